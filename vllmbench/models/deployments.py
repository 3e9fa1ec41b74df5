"""Requests and answers of the deployer (port 8002): deploy YAML, reconcile, job logs, terminals."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vllmbench.models.base import Strict

NAMESPACE = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
SHELLS = ("/bin/sh", "/bin/bash", "/bin/ash", "sh", "bash")
Shell = Literal["/bin/sh", "/bin/bash", "/bin/ash", "sh", "bash"]


class DeployBody(Strict):
    """The original deployer's request: YAML (one or more documents) and a namespace."""

    yaml_content: str = Field(min_length=1, max_length=1024 * 1024,
                              description="One or more Kubernetes objects as YAML documents.")
    namespace: str | None = Field(None, pattern=NAMESPACE,
                                  description="Benchmark namespace to deploy to (default: the first configured).")


class ReconcileBody(Strict):
    dry_run: bool = Field(False, description="Plan only: say what would change, change nothing.")


class ListQuery(Strict):
    namespace: str | None = Field(None, pattern=NAMESPACE)
    limit: int = Field(100, ge=1, le=500)


class ObjectQuery(Strict):
    namespace: str | None = Field(None, pattern=NAMESPACE)
    kind: str | None = Field(None, max_length=63)
    state: str | None = Field(None, max_length=32)
    owner: Literal["deploy", "vllm", "eval"] = "deploy"


class JobQuery(Strict):
    namespace: str | None = Field(None, pattern=NAMESPACE, description="Needed only when the name is in several.")


class LogQuery(Strict):
    namespace: str | None = Field(None, pattern=NAMESPACE)
    pod: str | None = Field(None, pattern=NAME, description="One pod of the job (default: every pod).")
    container: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    tail: int | None = Field(None, ge=0, le=100_000, description="Last lines per pod.")
    since: int | None = Field(None, ge=1, le=30 * 24 * 3600, description="Seconds back.")
    follow: bool = Field(False, description="Stream lines as the job writes them; ends when the job ends.")
    timestamps: bool = False


class TerminalCreate(Strict):
    job_name: str = Field(pattern=NAME)
    namespace: str | None = Field(None, pattern=NAMESPACE)
    pod_name: str | None = Field(None, pattern=NAME)
    container_name: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    shell: Shell = Field("/bin/sh", description="The shell to start.")
    cols: int = Field(80, ge=10, le=1000)
    rows: int = Field(24, ge=5, le=500)


class JobTerminal(Strict):
    namespace: str | None = Field(None, pattern=NAMESPACE)
    pod_name: str | None = Field(None, pattern=NAME)
    container_name: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    shell: Shell = "/bin/sh"
    cols: int = Field(80, ge=10, le=1000)
    rows: int = Field(24, ge=5, le=500)


class RunRequest(Strict):
    """The original deployer's ``POST /run``: one benchmark run, now an evaluation request."""

    project_id: str = Field(pattern=NAMESPACE, description="The project.")
    benchmark_type: str | None = Field(None, max_length=50,
                                       description="The harness: vllmbench, guidellm, vllm-bench-serve or lm-eval.")
    name: str | None = Field(None, max_length=63, description="A name for the run (the evaluation's id).")
    job_file_id: str | None = Field(None, max_length=300, description="A job template: templates/<name>.yaml.")
    config_file_id: str = Field(max_length=300, description="A benchmark profile: benchmarks/<name>.yaml.")
    vllm_model_endpoint: str = Field(min_length=8, max_length=500, description="URL of the server to benchmark.")
    model_name: str | None = Field(None, max_length=300)

    def evaluation(self) -> dict:
        """The body of the evaluations' ``POST /evaluate`` this request stands for."""
        import re

        def stem(path: str, folder: str) -> str:
            name = path.strip("/").removeprefix(f"{folder}/")
            return re.sub(r"\.ya?ml$", "", name)

        body: dict = {"project": self.project_id, "benchmark": stem(self.config_file_id, "benchmarks"),
                      "target_url": self.vllm_model_endpoint}
        if self.job_file_id:
            body["template"] = stem(self.job_file_id, "templates")
        elif self.benchmark_type:
            body["harness"] = self.benchmark_type
        if self.name:
            body["name"] = re.sub(r"[^a-z0-9-]", "-", self.name.lower()).strip("-")[:63] or None
        if self.model_name:
            body["model_name"] = self.model_name
        return {k: v for k, v in body.items() if v is not None}
