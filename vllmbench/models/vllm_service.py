"""Requests of the vLLM service (benchmark-vllm, port 8005): the original routes' bodies and ours.

``config`` is a ModelServer spec (:class:`vllmbench.models.servers.ModelServerSpec`), so a
typo in it is a 422 naming ``body.config.<field>``. The server's name and namespace come
from the body, else from the spec's own ``name``/``namespace``, else from the model's name
and the service's namespace.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from vllmbench.models.base import Strict
from vllmbench.models.servers import SLUG, ModelServerSpec

CONFIG_FILE = r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,255}\.ya?ml$"


class DeployBody(Strict):
    """``POST /deploy`` and ``POST /plan``: one server's spec."""

    config: ModelServerSpec
    name: str | None = Field(None, pattern=SLUG, description="The server's name (default: the spec's, else the model's).")
    namespace: str | None = Field(None, pattern=SLUG, description="models/<namespace>/ (default: the spec's, else the "
                                                                  "service's namespace).")


class FileDeployBody(Strict):
    """``POST /deploy-from-file``: a ModelServer file of the configuration repository (see ``GET /configs/files``)."""

    config_file: str = Field(pattern=CONFIG_FILE, description="A path in the repository (configs/opt.yaml, "
                                                              "models/team/llama.yaml) or a name under configs/.")
    name: str | None = Field(None, pattern=SLUG)
    namespace: str | None = Field(None, pattern=SLUG)

    @field_validator("config_file")
    @classmethod
    def _inside(cls, value: str) -> str:
        if any(part in ("", ".", "..", ".git") for part in value.split("/")):
            raise ValueError("a path inside the repository, without '.', '..' or empty parts")
        return value


class DefaultDeployBody(Strict):
    """``POST /deploy-default``: the default server (configs/default.yaml in the repository, else opt-125m on CPU)."""

    name: str | None = Field(None, pattern=SLUG)
    namespace: str | None = Field(None, pattern=SLUG)


class ReconcileBody(Strict):
    """``POST /reconcile``: place and apply models/ at the branch head now."""


class StatusQuery(Strict):
    probe: bool = Field(True, description="Ask the server's /v1/models now (false: the last recorded status).")
