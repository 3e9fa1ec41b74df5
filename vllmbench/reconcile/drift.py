"""Drift: does the live object still hold what we applied? Pure.

Server-side apply makes us the owner of exactly the fields we sent, so drift is a
field we sent whose live value differs (a person's ``kubectl edit``, a controller
fighting us). The comparison is a subset test: every value in the desired object
must be found in the live one; fields the server added (defaults, status, metadata)
are not drift. Lists of named things (containers, ports, env, volumes) match by
name, other lists by position. Resource quantities compare by value ("1000m" is
"1", "1Gi" is "1024Mi").

The test is conservative: a server that normalises a value in a way this module
does not know shows as drift, and the engine confirms drift with a server-side
dry-run before it writes anything (no false write, at the cost of one read).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

_SKIP_TOP = {"status"}
_SKIP_META = {"resourceVersion", "uid", "generation", "creationTimestamp", "managedFields", "selfLink"}
_QUANTITY_PARENTS = {"requests", "limits", "capacity", "allocatable", "hard"}
_SUFFIXES = {
    "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10 ** 3, "M": 10 ** 6,
    "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18,
}


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity as a number ("500m" -> 0.5, "1Gi" -> 1073741824), None if not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            number, factor = text[: -len(suffix)], Decimal(_SUFFIXES[suffix])
            break
    else:
        number, factor = text, Decimal(1)
    try:
        return Decimal(number) * factor
    except InvalidOperation:
        return None


def differences(desired: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """Dotted paths of desired values that the live object does not hold (empty: no drift)."""
    found: list[str] = []
    for key, value in desired.items():
        if key in _SKIP_TOP:
            continue
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in _SKIP_META}
            _compare(meta, (live or {}).get("metadata") or {}, "metadata", found)
        else:
            _compare(value, (live or {}).get(key), key, found)
    return found


def _compare(want: Any, have: Any, path: str, found: list[str], *, quantities: bool = False) -> None:
    if isinstance(want, dict):
        if not want:
            if have not in (None, {}):
                found.append(path)
            return
        if not isinstance(have, dict):
            found.append(path)
            return
        holds_quantities = path.rpartition(".")[2] in _QUANTITY_PARENTS
        for key, value in want.items():
            _compare(value, have.get(key), f"{path}.{key}", found, quantities=holds_quantities)
        return
    if isinstance(want, list):
        _compare_list(want, have, path, found)
        return
    if quantities:
        a, b = quantity(want), quantity(have)
        if a is not None and b is not None:
            if a != b:
                found.append(path)
            return
    if want is None:
        return  # null in a manifest means "unset": the server drops it
    if isinstance(want, bool) or isinstance(have, bool):
        if want is not have:
            found.append(path)
    elif want != have and not _same_scalar(want, have):
        found.append(path)


def _compare_list(want: list[Any], have: Any, path: str, found: list[str]) -> None:
    if not want:
        if have not in (None, []):
            found.append(path)
        return
    if not isinstance(have, list):
        found.append(path)
        return
    if all(isinstance(item, dict) and "name" in item for item in want):
        by_name = {item.get("name"): item for item in have if isinstance(item, dict)}
        if len(have) != len(want):
            found.append(f"{path} (count)")
        for item in want:
            other = by_name.get(item["name"])
            if other is None:
                found.append(f"{path}[{item['name']}]")
            else:
                _compare(item, other, f"{path}[{item['name']}]", found)
        return
    if len(have) != len(want):
        found.append(path)
        return
    for index, (a, b) in enumerate(zip(want, have)):
        _compare(a, b, f"{path}[{index}]", found)


def _same_scalar(a: Any, b: Any) -> bool:
    """The API answers some scalars in another type than sent (an int port as a string, ...)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, str) or isinstance(a, str) and isinstance(b, (int, float)):
        return str(a) == str(b)
    return False


def same_live(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two versions of one live object are the same but for bookkeeping (a dry-run against live)."""
    def strip(obj: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SKIP_META}
        return {**{k: v for k, v in obj.items() if k not in ("metadata", "status")}, "metadata": meta}

    return strip(a) == strip(b)
