"""Kubernetes names for MLflow's registered models and aliases: pure, deterministic.

MLflow allows almost anything in a registered model's name (spaces, capitals, dots,
underscores, any Unicode; only '/' and ':' are refused) and ``[\\w-]`` in an alias. A
ModelServer is named ``<model>-v<N>`` (or ``<model>-<alias>``) and must be a DNS-1123
label (lower case, digits, '-', at most 63 characters), because it becomes a Service.

A name that already is one is kept as it is. Any other is lowered, transliterated to
ASCII, every run of other characters becomes '-', and a short hash of the original
name is appended, so that two names that map alike ("My Model", "my_model") stay apart
and the same name always maps the same way. A name with no letter or digit left is
refused with the reason.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from vllmbench.errors import UserError

LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
LABEL_MAX = 63
MODEL_PART_MAX = 48  # leaves room for "-v<N>" and "-<alias>"
_HASH_LEN = 6


class NameRefused(UserError):
    code = "name_refused"


def _hashed(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LEN]


def k8s_part(text: str, *, max_len: int, what: str) -> str:
    """``text`` as part of a DNS-1123 label of at most ``max_len`` characters."""
    if LABEL.fullmatch(text) and len(text) <= max_len:
        return text
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    if not base:
        raise NameRefused(f"{what} {text!r} has no letter or digit (a-z, 0-9) to make a Kubernetes name of; "
                          "rename it in MLflow or leave it out of the rules")
    base = base[: max_len - _HASH_LEN - 1].rstrip("-")
    return f"{base}-{_hashed(text)}" if base else _hashed(text)


def model_part(model: str) -> str:
    """The Kubernetes form of a registered model's name (see the module docstring)."""
    return k8s_part(model, max_len=MODEL_PART_MAX, what="registered model")


def version_server(model: str, version: int) -> str:
    """The ModelServer of one version: ``<model>-v<N>``."""
    name = f"{model_part(model)}-v{int(version)}"
    if len(name) > LABEL_MAX:  # only with version numbers of more than 12 digits
        raise NameRefused(f"version {version} of {model!r} gives the name {name!r}, over {LABEL_MAX} characters")
    return name


def alias_server(model: str, alias: str) -> str:
    """The ModelServer that follows an alias: ``<model>-<alias>``.

    MLflow reserves aliases of the form ``v<N>``, so this never meets a version's name;
    an alias that maps to that form anyway (``_v2``) carries a hash like any mapped name.
    """
    part = model_part(model)
    alias_part = k8s_part(alias, max_len=LABEL_MAX - len(part) - 1, what="alias")
    if re.fullmatch(r"v\d+", alias_part):
        alias_part = f"{alias_part}-{_hashed(alias)}"
    return f"{part}-{alias_part}"
