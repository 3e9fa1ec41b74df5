"""The one settings object of a process.

Built once in the entry point (a function's first request, the CLI) and passed down.
Nothing reads the environment elsewhere, and nothing writes to it.

Which source wins, highest first (tested in ``tests/unit/test_settings.py``):

1. keyword arguments given to :func:`load_settings` (tests, the CLI's flags);
2. environment variables (``MONGO_URL``, ``VLLMBENCH_API_TOKEN``, ...), any case;
3. files in the secrets folder (``VLLMBENCH_SECRETS_DIR``, default
   ``/var/run/secrets/vllmbench``): one file per setting, named like the variable in
   lower case (``mongo_url``, ``vllmbench_api_token``, ``github_token``): this is how a
   Kubernetes Secret mounted as a volume is read;
4. the defaults below, which make the embedded stack work with nothing set.

This is pydantic-settings' order, read here with a few lines instead: importing
pydantic-settings and building its model cost about 90 ms, paid by the first request
of every cold-started function.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

DEFAULT_SECRETS_DIR = "/var/run/secrets/vllmbench"

# The service database of each function, as in the system vllmbench replaces:
# results live in their own database, and so does everything else.
FUNCTION_DATABASES: dict[str, str] = {
    "results": "benchmark_results",
    "sync": "benchmark_manager",
    "deploy": "benchmark_deployer",
    "mlflow_poll": "benchmark_mlflow",
    "eval": "benchmark_eval",
    "vllm_deploy": "benchmark_vllm",
}


class SettingsError(ValueError):
    """A setting's value cannot be used; the message names the variable and what it takes."""


class Secret:
    """A value that is never printed (``repr`` and ``str`` hide it), like pydantic's SecretStr."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class _Setting:
    """One setting: its default, the variable names it is read from, and its limits."""

    def __init__(self, default: Any, names: tuple[str, ...], *, ge: float | None = None, gt: float | None = None,
                 le: float | None = None, pattern: str | None = None) -> None:
        self.default, self.names = default, names
        self.ge, self.gt, self.le = ge, gt, le
        self.pattern = re.compile(pattern) if pattern else None
        self.kind = "str"

    def convert(self, name: str, value: Any) -> Any:
        optional = self.kind.endswith(" | None")
        kind = self.kind.removesuffix(" | None")
        where = f"{self.names[0]} ({name})"
        if value is None or (optional and value == ""):
            if optional:
                return None
            raise SettingsError(f"{where} needs a value")
        try:
            converted = _CONVERT[kind](value)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"{where} must be {_WHAT[kind]}, got {_shown(kind, value)}") from exc
        number = converted if isinstance(converted, (int, float)) and not isinstance(converted, bool) else None
        if number is not None:
            if self.ge is not None and number < self.ge:
                raise SettingsError(f"{where} must be at least {self.ge:g}, got {number}")
            if self.gt is not None and number <= self.gt:
                raise SettingsError(f"{where} must be more than {self.gt:g}, got {number}")
            if self.le is not None and number > self.le:
                raise SettingsError(f"{where} must be at most {self.le:g}, got {number}")
        if self.pattern is not None and not self.pattern.match(str(converted)):
            raise SettingsError(f"{where} must match {self.pattern.pattern}, got {converted!r}")
        return converted


def setting(default: Any, *names: str, **limits: Any) -> Any:
    """A setting read from the variables ``names`` (the first is the documented one)."""
    return _Setting(default, names, **limits)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "t", "y"):
        return True
    if text in ("0", "false", "no", "off", "f", "n"):
        return False
    raise ValueError(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(value)
    return int(str(value).strip()) if isinstance(value, str) else int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value.strip() if isinstance(value, str) else value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _to_secret(value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise TypeError(value)
    return Secret(value)


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


_CONVERT = {"str": _to_str, "int": _to_int, "float": _to_float, "bool": _to_bool, "Path": Path,
            "Secret": _to_secret}
_WHAT = {"str": "text", "int": "an integer", "float": "a number", "bool": "true or false", "Path": "a path",
         "Secret": "text"}


def _shown(kind: str, value: Any) -> str:
    return "a secret value" if kind == "Secret" else repr(value)[:80]


class _Declared:
    """Settings declared as annotated class attributes (``name: int = setting(...)``)."""

    _settings: dict[str, _Setting] = {}

    def __init_subclass__(cls) -> None:
        declared = {}
        for name, kind in cls.__annotations__.items():
            item = cls.__dict__.get(name)
            if isinstance(item, _Setting):
                item.kind = str(kind)
                declared[name] = item
        cls._settings = declared

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(self._settings)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        for name, item in self._settings.items():
            value = values[name] if name in values else item.default
            object.__setattr__(self, name, item.convert(name, value))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("settings are read-only; build new ones with load_settings(...)")

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._settings)
        return f"{type(self).__name__}({shown})"


class Settings(_Declared):
    function: str = setting("", "VLLMBENCH_FUNCTION", "function")
    log_level: str = setting("INFO", "VLLMBENCH_LOG_LEVEL", "log_level")

    mongo_url: Secret = setting("mongodb://127.0.0.1:27017/", "MONGO_URL", "mongo_url")
    # Each function's own database user (manifests/base/mongodb): kept out of MONGO_URL,
    # so that one URL serves every function and each user's password sits in its own Secret.
    mongo_username: str = setting("", "MONGO_USERNAME", "mongo_username")
    mongo_password: Secret | None = setting(None, "MONGO_PASSWORD", "mongo_password")
    mongo_auth_source: str = setting("admin", "MONGO_AUTH_SOURCE", "mongo_auth_source")
    mongo_timeout_ms: int = setting(2000, "VLLMBENCH_MONGO_TIMEOUT_MS", "mongo_timeout_ms", ge=100)
    database: str = setting("", "VLLMBENCH_DATABASE", "database")

    api_token: Secret | None = setting(None, "VLLMBENCH_API_TOKEN", "vllmbench_api_token", "api_token")
    # Knative brokers cannot send a token: set false there, with cluster-local visibility.
    events_require_token: bool = setting(True, "VLLMBENCH_EVENTS_REQUIRE_TOKEN", "events_require_token")
    github_token: Secret | None = setting(None, "GITHUB_TOKEN", "github_token")
    github_webhook_secret: Secret | None = setting(None, "GITHUB_WEBHOOK_SECRET", "github_webhook_secret")
    gitops_repo_url: str = setting("", "GITOPS_REPO_URL", "gitops_repo_url")
    gitops_branch: str = setting("main", "GITOPS_BRANCH", "gitops_branch")
    # Git access of the gitops core (docs/gitops.md): cache folder (default <data_dir>/git-cache),
    # per-project credential files, push retries, the largest file mirrored with its content.
    git_cache_dir: Path | None = setting(None, "VLLMBENCH_GIT_CACHE_DIR", "git_cache_dir")
    git_credentials_dir: Path = setting(Path(DEFAULT_SECRETS_DIR), "VLLMBENCH_GIT_CREDENTIALS_DIR",
                                        "git_credentials_dir")
    git_push_retries: int = setting(6, "VLLMBENCH_GIT_PUSH_RETRIES", "git_push_retries", ge=1, le=50)
    git_fetch_depth: int = setting(1, "VLLMBENCH_GIT_FETCH_DEPTH", "git_fetch_depth", ge=0)
    git_max_file_bytes: int = setting(4 * 1024 * 1024, "VLLMBENCH_GIT_MAX_FILE_BYTES", "git_max_file_bytes",
                                      ge=1024)
    git_author_name: str = setting("vllmbench", "VLLMBENCH_GIT_AUTHOR_NAME", "git_author_name")
    git_author_email: str = setting("vllmbench@localhost", "VLLMBENCH_GIT_AUTHOR_EMAIL", "git_author_email")

    broker_url: str = setting("", "K_SINK", "VLLMBENCH_BROKER_URL", "broker_url")
    data_dir: Path = setting(Path(".data"), "VLLMBENCH_DATA_DIR", "data_dir")
    max_body_bytes: int = setting(10 * 1024 * 1024, "VLLMBENCH_MAX_BODY_BYTES", "max_body_bytes", ge=1024)
    max_json_depth: int = setting(64, "VLLMBENCH_MAX_JSON_DEPTH", "max_json_depth", ge=4)
    # A request body must have arrived this long after its headers (408 and the connection closed).
    body_timeout_s: float = setting(30.0, "VLLMBENCH_BODY_TIMEOUT_S", "body_timeout_s", gt=0)
    # Helper processes that validate and compress big batches of standardized records beside the
    # results function's own (docs/results.md, "Ingest"): -1 picks them when two CPUs or more are
    # there to run it (one per CPU, at most 4), 0 does everything in the function's process.
    ingest_processes: int = setting(-1, "VLLMBENCH_INGEST_PROCESSES", "ingest_processes", ge=-1, le=8)
    event_dedupe_ttl_s: int = setting(7 * 24 * 3600, "VLLMBENCH_EVENT_DEDUPE_TTL_S", "event_dedupe_ttl_s", ge=60)
    # A delivery's claim on an event lapses this long after its holder stopped renewing it
    # (the process died); it must be shorter than the broker's retry window (about 15 s).
    event_claim_s: float = setting(10.0, "VLLMBENCH_EVENT_CLAIM_S", "event_claim_s", gt=0)
    # How long a second delivery of an event in progress waits for its outcome before a 409.
    event_claim_wait_s: float = setting(5.0, "VLLMBENCH_EVENT_CLAIM_WAIT_S", "event_claim_wait_s", ge=0)

    # The MLflow service (docs/mlflow.md). MLflow's own variable names for the server and its credentials.
    mlflow_tracking_uri: str = setting("", "MLFLOW_TRACKING_URI", "mlflow_tracking_uri")
    mlflow_tracking_token: Secret | None = setting(None, "MLFLOW_TRACKING_TOKEN", "mlflow_tracking_token")
    mlflow_tracking_username: str = setting("", "MLFLOW_TRACKING_USERNAME", "mlflow_tracking_username")
    mlflow_tracking_password: Secret | None = setting(None, "MLFLOW_TRACKING_PASSWORD", "mlflow_tracking_password")
    mlflow_timeout_s: float = setting(10.0, "VLLMBENCH_MLFLOW_TIMEOUT_S", "mlflow_timeout_s", gt=0, le=300)
    # A PingSource tick polls when the last good poll is older than this.
    mlflow_poll_interval_s: int = setting(60, "VLLMBENCH_MLFLOW_POLL_INTERVAL_S", "mlflow_poll_interval_s", ge=1)
    # Every version is read again this often (tags and stages change in place).
    mlflow_resync_s: int = setting(3600, "VLLMBENCH_MLFLOW_RESYNC_S", "mlflow_resync_s", ge=60)
    # Commits per poll at most; the rest follow on the next poll.
    mlflow_max_writes: int = setting(20, "VLLMBENCH_MLFLOW_MAX_WRITES", "mlflow_max_writes", ge=1, le=1000)
    # Where MLflow should call us; set with the secret to register the webhook.
    mlflow_webhook_url: str = setting("", "VLLMBENCH_MLFLOW_WEBHOOK_URL", "mlflow_webhook_url")
    mlflow_webhook_secret: Secret | None = setting(None, "VLLMBENCH_MLFLOW_WEBHOOK_SECRET", "mlflow_webhook_secret")
    mlflow_webhook_tolerance_s: int = setting(300, "VLLMBENCH_MLFLOW_WEBHOOK_TOLERANCE_S",
                                              "mlflow_webhook_tolerance_s", ge=1)

    # Workload runtimes (vllmbench/runtimes): where the reconcile engine applies objects.
    # auto: kube when KUBECONFIG is set or running in a cluster, else local.
    runtime: str = setting("auto", "VLLMBENCH_RUNTIME", "runtime", pattern=r"^(auto|kube|local)$")
    kubeconfig: Path | None = setting(None, "KUBECONFIG", "kubeconfig")
    kubernetes_service_host: str = setting("", "KUBERNETES_SERVICE_HOST", "kubernetes_service_host")
    # Namespaces the deployer may apply to (comma-separated).
    workload_namespaces_csv: str = setting("default,vllmbench-workloads", "VLLMBENCH_WORKLOAD_NAMESPACES",
                                           "workload_namespaces")
    local_runtime_dir: Path | None = setting(None, "VLLMBENCH_LOCAL_RUNTIME_DIR", "local_runtime_dir")
    # Let the local runtime's terminal open a shell on this machine.
    local_exec: bool = setting(False, "VLLMBENCH_LOCAL_EXEC", "local_exec")

    terminal_max_sessions: int = setting(5, "VLLMBENCH_TERMINAL_MAX_SESSIONS", "terminal_max_sessions", ge=1, le=100)
    terminal_idle_s: int = setting(900, "VLLMBENCH_TERMINAL_IDLE_S", "terminal_idle_s", ge=10, le=24 * 3600)

    # Where the functions reach each other (HTTP; functions never import each other). The
    # defaults are the embedded stack's ports; the manifests set the cluster's names.
    manager_url: str = setting("http://127.0.0.1:8001", "VLLMBENCH_MANAGER_URL", "manager_url")
    results_url: str = setting("http://127.0.0.1:8000", "VLLMBENCH_RESULTS_URL", "results_url")
    vllm_url: str = setting("http://127.0.0.1:8005", "VLLMBENCH_VLLM_URL", "vllm_url")
    eval_url: str = setting("http://127.0.0.1:8004", "VLLMBENCH_EVAL_URL", "eval_url")
    deployer_url: str = setting("http://127.0.0.1:8002", "VLLMBENCH_DEPLOYER_URL", "deployer_url")
    # Evaluations (docs/evaluations.md)
    harness_image: str = setting("ghcr.io/vllmbench/vllmbench-functions:0.1.0", "VLLMBENCH_HARNESS_IMAGE",
                                 "harness_image")
    # The Secret with VLLMBENCH_API_TOKEN that benchmark jobs mount.
    harness_token_secret: str = setting("", "VLLMBENCH_HARNESS_TOKEN_SECRET", "harness_token_secret")
    eval_default_project: str = setting("", "VLLMBENCH_EVAL_DEFAULT_PROJECT", "eval_default_project")
    eval_default_benchmark: str = setting("", "VLLMBENCH_EVAL_DEFAULT_BENCHMARK", "eval_default_benchmark")
    # The original service's delay before an evaluation of {model_name, vllm-url}.
    evaluation_delay_minutes: float = setting(0.0, "EVALUATION_DELAY_MINUTES", "evaluation_delay_minutes", ge=0)
    eval_timeout_s: float = setting(7200.0, "VLLMBENCH_EVAL_TIMEOUT_S", "eval_timeout_s", gt=0)
    # The time given the client pods of a sharded repeat to start before their shared start (docs/evaluations.md).
    eval_shard_lead_s: float = setting(60.0, "VLLMBENCH_EVAL_SHARD_LEAD_S", "eval_shard_lead_s", ge=1, le=3600)
    # Where the functions (and the schedules' PingSources) live.
    functions_namespace: str = setting("vllmbench", "VLLMBENCH_FUNCTIONS_NAMESPACE", "functions_namespace")

    # The vLLM service (docs/placement.md)
    # Where vLLM servers run; default: the first workload namespace.
    vllm_namespace: str = setting("", "VLLMBENCH_VLLM_NAMESPACE", "vllm_namespace")
    # The declared GPUs of the local runtime, e.g. local=2x80GB:NVIDIA-H100-80GB-HBM3.
    simulated_gpus: str = setting("", "VLLMBENCH_SIMULATED_GPUS", "simulated_gpus")
    # auto: nvidia-smi where present, else the simulated inventory.
    local_gpus: str = setting("auto", "VLLMBENCH_LOCAL_GPUS", "local_gpus", pattern=r"^(auto|simulated|nvidia-smi)$")
    # How this process reaches a server ({namespace}, {name}, {port}); default: the runtime's Service URL.
    vllm_probe_url: str = setting("", "VLLMBENCH_VLLM_PROBE_URL", "vllm_probe_url")

    @property
    def workload_namespaces(self) -> list[str]:
        return [part.strip() for part in self.workload_namespaces_csv.split(",") if part.strip()]

    @property
    def runtime_kind(self) -> str:
        """The runtime in force: ``kube`` or ``local`` (``auto`` resolved)."""
        if self.runtime != "auto":
            return self.runtime
        return "kube" if self.kubeconfig or self.kubernetes_service_host else "local"

    def database_for(self, function: str) -> str:
        """The database a function keeps its data in (``VLLMBENCH_DATABASE`` overrides)."""
        return self.database or FUNCTION_DATABASES.get(function, f"benchmark_{function}")

    def secret_values(self) -> list[str]:
        """Every secret value in force, so that logs and errors can redact them."""
        values = []
        for secret in (self.api_token, self.github_token, self.github_webhook_secret, self.mongo_password,
                       self.mlflow_tracking_token, self.mlflow_tracking_password, self.mlflow_webhook_secret):
            if secret is not None and secret.get_secret_value():
                values.append(secret.get_secret_value())
        password = _password_in_url(self.mongo_url.get_secret_value())
        if password:
            values.append(password)
        return values


def _password_in_url(url: str) -> str:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return ""
    return unquote(password) if password else ""


def load_settings(**overrides: Any) -> Settings:
    """Build the settings of this process (see the module docstring for precedence)."""
    secret_files = _secret_files(Path(os.environ.get("VLLMBENCH_SECRETS_DIR", DEFAULT_SECRETS_DIR)))
    environ = {key.lower(): value for key, value in os.environ.items()}
    by_alias = {alias.lower(): name for name, item in Settings._settings.items() for alias in item.names}
    values: dict[str, Any] = {}
    for key, value in overrides.items():  # a field's name or any of its variable names
        values[key if key in Settings._settings else by_alias.get(key.lower(), key)] = value
    for name, item in Settings._settings.items():
        if name in values:
            continue
        names = [choice.lower() for choice in item.names]
        found = next((environ[n] for n in names if n in environ), None)
        if found is None:
            found = next((_read(secret_files[n]) for n in names if n in secret_files), None)
        if found is not None:
            values[name] = found
    return Settings(**values)


def _secret_files(folder: Path) -> dict[str, Path]:
    """The files of a mounted Secret: one per key, named like the variable (any case)."""
    try:
        return {entry.name.lower(): entry for entry in folder.iterdir() if entry.is_file()}
    except OSError:
        return {}


def _read(path: Path) -> str:
    return path.read_text().strip()
