"""Server-side apply, the local way: what an applied manifest becomes once stored.

The applied manifest's fields replace the live object's (one field manager owns a whole
object in vllmbench, so field-by-field ownership would change nothing here); status and
the server's metadata (uid, creationTimestamp, resourceVersion, generation, deletion
marks) are kept. ``generation`` moves when the spec changes; an apply that changes
nothing is not a write, so resourceVersion stays.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from vllmbench.errors import Conflict, ValidationFailed
from vllmbench.runtimes.local import validate
from vllmbench.runtimes.local.procs import rfc3339

SERVER_META = ("uid", "creationTimestamp", "resourceVersion", "generation", "deletionTimestamp",
               "deletionGracePeriodSeconds", "managedFields", "selfLink")
# Top-level fields that are not content: a change to anything else (spec, data, ports...) bumps generation.
NOT_SPEC = ("apiVersion", "kind", "metadata", "status")


def normalized(obj: dict[str, Any], *, namespaced: bool) -> dict[str, Any]:
    """The manifest as the API reads it: server fields dropped, the default namespace filled in."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise validate.fail(obj, [("metadata", "Invalid value: must be an object", "FieldValueInvalid")])
    for key in SERVER_META:
        meta.pop(key, None)
    if namespaced:
        meta["namespace"] = meta.get("namespace") or "default"
    else:
        meta.pop("namespace", None)
    for key in ("labels", "annotations"):
        if key in meta and not meta[key]:
            del meta[key]
        for k, v in (meta.get(key) or {}).items():
            if not isinstance(v, str):
                raise validate.fail(obj, [(f"metadata.{key}[{k}]", "Invalid value: must be a string",
                                           "FieldValueInvalid")])
    return out


def content(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in NOT_SPEC}


def applied(live: dict[str, Any] | None, manifest: dict[str, Any], *, field_manager: str, force: bool,
            namespaced: bool) -> tuple[dict[str, Any], bool]:
    """The object to store for ``manifest`` over ``live`` and whether it differs from ``live``.

    Raises ValidationFailed (422) for an invalid object or an immutable change, Conflict (409)
    when ``force`` is off and another manager applied the object with other content, or when
    the manifest names a resourceVersion that is not the live one."""
    wanted_rv = (manifest.get("metadata") or {}).get("resourceVersion")
    new = normalized(manifest, namespaced=namespaced)
    validate.check(new)
    if live is None:
        meta = new["metadata"]
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=rfc3339())
        if "spec" in new:
            meta["generation"] = 1
        meta["managedFields"] = [_managed(field_manager, new["apiVersion"])]
        return new, True
    if wanted_rv and wanted_rv != live["metadata"].get("resourceVersion"):
        raise Conflict(f'Operation cannot be fulfilled on {new["kind"]} "{new["metadata"]["name"]}": the object has '
                       "been modified; please apply your changes to the latest version and try again")
    validate.check_update(live, new)
    live_meta = live["metadata"]
    meta = new["metadata"]
    for key in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
        if key in live_meta:
            meta[key] = live_meta[key]
    if live_meta.get("finalizers") and "finalizers" not in meta:
        meta["finalizers"] = live_meta["finalizers"]
    if "status" in live:
        new["status"] = live["status"]
    spec_changed = content(new) != content(live)
    if "spec" in new:
        generation = int(live_meta.get("generation") or 0)
        meta["generation"] = generation + 1 if spec_changed or not generation else generation
    managers = [m for m in live_meta.get("managedFields") or [] if m.get("manager") != field_manager]
    same = _without_managers(new) == _without_managers(live)
    if not force and not same and any(m.get("operation") == "Apply" for m in managers):
        others = ", ".join(sorted({m["manager"] for m in managers}))
        raise Conflict(f'Apply failed with conflicts: conflict with "{others}": {new["kind"]} '
                       f'"{meta["name"]}" was applied by another field manager; apply with force to take it over')
    mine = [m for m in live_meta.get("managedFields") or [] if m.get("manager") == field_manager]
    if same and mine:
        return live, False
    meta["managedFields"] = managers + [_managed(field_manager, new["apiVersion"])]
    meta["resourceVersion"] = live_meta.get("resourceVersion")
    return new, True


def _managed(manager: str, api_version: str) -> dict[str, Any]:
    return {"manager": manager, "operation": "Apply", "apiVersion": api_version, "time": rfc3339(),
            "fieldsType": "FieldsV1"}


def _without_managers(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    out["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in ("managedFields", "resourceVersion")}
    return out


def bad_kind(obj: Any) -> ValidationFailed | None:
    """A manifest that is not an object at all (no apiVersion, kind or metadata.name)."""
    if not isinstance(obj, dict):
        return ValidationFailed("an object must be a mapping with apiVersion, kind and metadata")
    missing = [f for f in ("apiVersion", "kind") if not isinstance(obj.get(f), str) or not obj.get(f)]
    if missing:
        return ValidationFailed(f"Object 'Kind' is missing in the manifest: {', '.join(missing)} required",
                                details=[{"loc": [f], "msg": "Required value", "type": "FieldValueRequired"}
                                         for f in missing])
    return None
