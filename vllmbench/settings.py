"""The one settings object of a process.

Built once in the entry point (a function's first request, the CLI) and passed down.
Nothing reads the environment elsewhere, and nothing writes to it.

Which source wins, highest first (pydantic-settings' order, tested in
``tests/unit/test_settings.py``):

1. keyword arguments given to :func:`load_settings` (tests, the CLI's flags);
2. environment variables (``MONGO_URL``, ``VLLMBENCH_API_TOKEN``, ...);
3. files in the secrets folder (``VLLMBENCH_SECRETS_DIR``, default
   ``/var/run/secrets/vllmbench``): one file per setting, named like the variable in
   lower case (``mongo_url``, ``vllmbench_api_token``, ``github_token``): this is how a
   Kubernetes Secret mounted as a volume is read;
4. the defaults below, which make the embedded stack work with nothing set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

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


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, populate_by_name=True)

    function: str = Field("", validation_alias=_env("VLLMBENCH_FUNCTION", "function"))
    log_level: str = Field("INFO", validation_alias=_env("VLLMBENCH_LOG_LEVEL", "log_level"))

    mongo_url: SecretStr = Field(
        SecretStr("mongodb://127.0.0.1:27017/"), validation_alias=_env("MONGO_URL", "mongo_url")
    )
    mongo_timeout_ms: int = Field(
        2000, ge=100, validation_alias=_env("VLLMBENCH_MONGO_TIMEOUT_MS", "mongo_timeout_ms")
    )
    database: str = Field("", validation_alias=_env("VLLMBENCH_DATABASE", "database"))

    api_token: SecretStr | None = Field(
        None, validation_alias=_env("VLLMBENCH_API_TOKEN", "vllmbench_api_token", "api_token")
    )
    events_require_token: bool = Field(
        True, validation_alias=_env("VLLMBENCH_EVENTS_REQUIRE_TOKEN", "events_require_token"),
        description="Knative brokers cannot send a token: set false there, with cluster-local visibility.",
    )
    github_token: SecretStr | None = Field(None, validation_alias=_env("GITHUB_TOKEN", "github_token"))
    github_webhook_secret: SecretStr | None = Field(
        None, validation_alias=_env("GITHUB_WEBHOOK_SECRET", "github_webhook_secret")
    )
    gitops_repo_url: str = Field("", validation_alias=_env("GITOPS_REPO_URL", "gitops_repo_url"))
    gitops_branch: str = Field("main", validation_alias=_env("GITOPS_BRANCH", "gitops_branch"))
    # Git access of the gitops core (docs/gitops.md): cache folder (default <data_dir>/git-cache),
    # per-project credential files, push retries, the largest file mirrored with its content.
    git_cache_dir: Path | None = Field(None, validation_alias=_env("VLLMBENCH_GIT_CACHE_DIR", "git_cache_dir"))
    git_credentials_dir: Path = Field(Path(DEFAULT_SECRETS_DIR), validation_alias=_env("VLLMBENCH_GIT_CREDENTIALS_DIR", "git_credentials_dir"))
    git_push_retries: int = Field(6, ge=1, le=50, validation_alias=_env("VLLMBENCH_GIT_PUSH_RETRIES", "git_push_retries"))
    git_fetch_depth: int = Field(1, ge=0, validation_alias=_env("VLLMBENCH_GIT_FETCH_DEPTH", "git_fetch_depth"))
    git_max_file_bytes: int = Field(4 * 1024 * 1024, ge=1024, validation_alias=_env("VLLMBENCH_GIT_MAX_FILE_BYTES", "git_max_file_bytes"))
    git_author_name: str = Field("vllmbench", validation_alias=_env("VLLMBENCH_GIT_AUTHOR_NAME", "git_author_name"))
    git_author_email: str = Field("vllmbench@localhost", validation_alias=_env("VLLMBENCH_GIT_AUTHOR_EMAIL", "git_author_email"))

    broker_url: str = Field(
        "", validation_alias=_env("K_SINK", "VLLMBENCH_BROKER_URL", "broker_url")
    )
    data_dir: Path = Field(Path(".data"), validation_alias=_env("VLLMBENCH_DATA_DIR", "data_dir"))
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, validation_alias=_env("VLLMBENCH_MAX_BODY_BYTES", "max_body_bytes")
    )
    max_json_depth: int = Field(64, ge=4, validation_alias=_env("VLLMBENCH_MAX_JSON_DEPTH", "max_json_depth"))
    event_dedupe_ttl_s: int = Field(
        7 * 24 * 3600, ge=60, validation_alias=_env("VLLMBENCH_EVENT_DEDUPE_TTL_S", "event_dedupe_ttl_s")
    )
    # A delivery's claim on an event lapses this long after its holder stopped renewing it
    # (the process died); it must be shorter than the broker's retry window (about 15 s).
    event_claim_s: float = Field(10.0, gt=0, validation_alias=_env("VLLMBENCH_EVENT_CLAIM_S", "event_claim_s"))
    event_claim_wait_s: float = Field(
        5.0, ge=0, validation_alias=_env("VLLMBENCH_EVENT_CLAIM_WAIT_S", "event_claim_wait_s"))
    body_timeout_s: float = Field(30.0, gt=0, validation_alias=_env("VLLMBENCH_BODY_TIMEOUT_S", "body_timeout_s"))

    # Workload runtimes (vllmbench/runtimes): where the reconcile engine applies objects.
    runtime: str = Field("auto", pattern=r"^(auto|kube|local)$", validation_alias=_env("VLLMBENCH_RUNTIME", "runtime"),
                         description="auto: kube when KUBECONFIG is set or running in a cluster, else local.")
    kubeconfig: Path | None = Field(None, validation_alias=_env("KUBECONFIG", "kubeconfig"))
    kubernetes_service_host: str = Field("", validation_alias=_env("KUBERNETES_SERVICE_HOST", "kubernetes_service_host"))
    workload_namespaces_csv: str = Field(
        "default,vllmbench-workloads", validation_alias=_env("VLLMBENCH_WORKLOAD_NAMESPACES", "workload_namespaces"),
        description="Namespaces the deployer may apply to (comma-separated).")
    local_runtime_dir: Path | None = Field(None, validation_alias=_env("VLLMBENCH_LOCAL_RUNTIME_DIR", "local_runtime_dir"))
    local_exec: bool = Field(False, validation_alias=_env("VLLMBENCH_LOCAL_EXEC", "local_exec"),
                             description="Let the local runtime's terminal open a shell on this machine.")

    terminal_max_sessions: int = Field(5, ge=1, le=100, validation_alias=_env("VLLMBENCH_TERMINAL_MAX_SESSIONS", "terminal_max_sessions"))
    terminal_idle_s: int = Field(900, ge=10, le=24 * 3600, validation_alias=_env("VLLMBENCH_TERMINAL_IDLE_S", "terminal_idle_s"))

    # Where the functions reach each other (HTTP; functions never import each other). The
    # defaults are the embedded stack's ports; the manifests set the cluster's names.
    manager_url: str = Field("http://127.0.0.1:8001", validation_alias=_env("VLLMBENCH_MANAGER_URL", "manager_url"))
    results_url: str = Field("http://127.0.0.1:8000", validation_alias=_env("VLLMBENCH_RESULTS_URL", "results_url"))
    vllm_url: str = Field("http://127.0.0.1:8005", validation_alias=_env("VLLMBENCH_VLLM_URL", "vllm_url"))
    eval_url: str = Field("http://127.0.0.1:8004", validation_alias=_env("VLLMBENCH_EVAL_URL", "eval_url"))
    # Evaluations (docs/evaluations.md)
    harness_image: str = Field("ghcr.io/vllmbench/vllmbench-functions:0.1.0",
                               validation_alias=_env("VLLMBENCH_HARNESS_IMAGE", "harness_image"))
    harness_token_secret: str = Field("", validation_alias=_env("VLLMBENCH_HARNESS_TOKEN_SECRET", "harness_token_secret"),
                                      description="Secret with VLLMBENCH_API_TOKEN that benchmark jobs mount.")
    eval_default_project: str = Field("", validation_alias=_env("VLLMBENCH_EVAL_DEFAULT_PROJECT", "eval_default_project"))
    eval_default_benchmark: str = Field("", validation_alias=_env("VLLMBENCH_EVAL_DEFAULT_BENCHMARK", "eval_default_benchmark"))
    evaluation_delay_minutes: float = Field(0.0, ge=0, validation_alias=_env("EVALUATION_DELAY_MINUTES", "evaluation_delay_minutes"),
                                            description="The original service's delay before an evaluation of {model_name, vllm-url}.")
    eval_timeout_s: float = Field(7200.0, gt=0, validation_alias=_env("VLLMBENCH_EVAL_TIMEOUT_S", "eval_timeout_s"))
    functions_namespace: str = Field("vllmbench", validation_alias=_env("VLLMBENCH_FUNCTIONS_NAMESPACE", "functions_namespace"),
                                     description="Where the functions (and the schedules' PingSources) live.")

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
        for secret in (self.api_token, self.github_token, self.github_webhook_secret):
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
    secrets_dir = os.environ.get("VLLMBENCH_SECRETS_DIR", DEFAULT_SECRETS_DIR)
    kwargs: dict[str, Any] = dict(overrides)
    if Path(secrets_dir).is_dir():
        kwargs["_secrets_dir"] = secrets_dir
    return Settings(**kwargs)
