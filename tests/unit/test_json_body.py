"""One-pass body parsing (``bodies.parse_body``) answers exactly as the two-pass path did
(``parse_json`` then strict validation of the same bytes): same value, or the same error,
status and message; the schema bounds that let it skip checks are right."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.records import raw, record
from vllmbench.errors import VllmbenchError
from vllmbench.models.base import Open, Strict
from vllmbench.models.results import RawInput, RecordOrBatch, StandardizedRecord
from vllmbench.web.bodies import parse_body, parse_json, validate
from vllmbench.web.json_bounds import Bounds, bounds, may_hold_non_finite, nesting_depth

DEPTH = 64


class Loose(pydantic.BaseModel):  # the default config: floats admit NaN and Infinity
    x: float | None = None
    items: list[float] = []


class Node(Strict):
    name: str = "n"
    children: list["Node"] = []


class Extra(Open):
    name: str = "o"


TYPES = [RecordOrBatch, RawInput, StandardizedRecord, dict[str, Any], list[float], Loose, Node, Extra]


def _outcome(fn: Any) -> tuple[Any, ...]:
    try:
        value = fn()
    except VllmbenchError as exc:
        return ("error", exc.status, exc.message, json.dumps(exc.details, sort_keys=True, default=str))
    dumped = value.model_dump(mode="json") if hasattr(value, "model_dump") else (
        [v.model_dump(mode="json") for v in value] if isinstance(value, list) and value
        and hasattr(value[0], "model_dump") else value)
    return ("value", json.dumps(dumped, sort_keys=True, allow_nan=True))


def _same(model: Any, data: bytes) -> None:
    two_pass = _outcome(lambda: validate(model, parse_json(data, max_depth=DEPTH), where="body", strict=True,
                                          text=data))
    one_pass = _outcome(lambda: parse_body(model, data, max_depth=DEPTH))
    assert one_pass == two_pass, data[:300]


def _raw_with(fragment: str) -> bytes:
    return ('{"run_id": "r", "harness": {"name": "h"}, "data": {"v": ' + fragment + "}}").encode()


def _record_with(path: str, fragment: str) -> bytes:
    text = json.dumps(record("one"))
    marker = {"duration_s": '"duration_s": 60.0', "labels": '"tags": ['}[path]
    replacement = {"duration_s": f'"duration_s": {fragment}', "labels": f'"labels": {{"a": {fragment}}}, "tags": ['}
    assert marker in text
    return text.replace(marker, replacement[path], 1).encode()


FRAGMENTS = ["1", "NaN", "-Infinity", "Infinity", "1e999", "-1e999", "1e308", "1e-999", "1" + "0" * 400 + ".0",
             "1" + "0" * 250 + "e60", "9" * 4300, "9" * 4301, '"\\ud800"', '"\\udfff x"', '"\\ud83d\\ude80"',
             '"NaN"', '"Infinity and 1e999"', "[" * 63 + "]" * 63, "[" * 64 + "]" * 64, "[" * 70 + "]" * 70,
             "[" * 250 + "]" * 250, '{"a":' * 70 + "1" + "}" * 70, '"[[[[[[[[[["', '"\\\\"', '"\\"[["',
             "[1,]", "01", "1.", ".5", "tru", '"\x01"', "[1 2]", '{"\\ud800": 1}', "-0", "1E+400", "1e099"]

BODIES = ([_raw_with(f) for f in FRAGMENTS]
          + [_record_with("duration_s", f) for f in FRAGMENTS]
          + [_record_with("labels", f) for f in FRAGMENTS]
          + [b"", b"   ", b"\xff\xfe", b'\xef\xbb\xbf{}', b"{", b'{"run_id": "x",', b"[]", b"{}", b"null", b"[" * 30_000,
             b"[" * 3000 + b"]" * 3000, json.dumps([record("a"), record("b")]).encode(),
             json.dumps([record("a"), record("a", stage=1)]).encode(), b"  [" + json.dumps(record("c")).encode() + b"]",
             json.dumps(raw("ok", data={"k": [1, 2.5, "x", None, {"y": [True]}]})).encode(),
             json.dumps(record("bad-stage") | {"run": {"run_id": "x", "stage": "0"}}).encode(),
             b'{"x": NaN}', b'{"items": [1, Infinity]}', b'{"children": [{"children": [{"name": 5}]}]}',
             b'{"name": "o", "extra": {"deep": ' + b"[" * 80 + b"]" * 80 + b"}}", b'{"name": "o", "z": NaN}'])


@pytest.mark.parametrize("model", TYPES, ids=lambda t: getattr(t, "__name__", str(t)))
def test_one_pass_answers_as_two_passes_did(model):
    for body in BODIES:
        _same(model, body)


_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
_values = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=4), inner, max_size=4)),
                       max_leaves=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_values, cut=st.integers(0, 400), splice=st.sampled_from(["", "[", "]", "\\ud800", '"', "NaN", "1e400"]))
def test_generated_bodies_answer_as_two_passes_did(value, cut, splice):
    text = json.dumps(raw("gen", data={"v": value}), ensure_ascii=bool(cut % 2))
    mutated = text if not splice else text[:cut] + splice + text[cut:]
    for body in (text, mutated):
        data = body.encode("utf-8", "surrogatepass")
        for model in (RawInput, dict[str, Any], Loose):
            _same(model, data)


def test_a_record_body_is_bounded_so_no_byte_scan_runs():
    assert bounds(RecordOrBatch) == Bounds(depth=6, non_finite=False)
    assert bounds(StandardizedRecord).depth <= DEPTH


@pytest.mark.parametrize("model", [RawInput, dict[str, Any], list, Node, Extra, pydantic.JsonValue])
def test_free_form_recursive_and_open_types_are_unbounded(model):
    assert bounds(model).depth is None


@pytest.mark.parametrize("model,non_finite", [(list[float], True), (Loose, True), (list[int], False),
                                              (StandardizedRecord, False), (RawInput, True)])
def test_non_finite_numbers_pass_only_where_the_schema_lets_them(model, non_finite):
    assert bounds(model).non_finite is non_finite


@pytest.mark.parametrize("text,depth", [("1", 0), ("[]", 1), ('{"a": [1, {"b": []}]}', 4), ('["]]]", "[[["]', 1),
                                        ('["\\\\", ["\\""]]', 2), ('{"k\\"[": {"v": "\\\\\\"{"}}', 2),
                                        ("[" * 100 + "]" * 100, DEPTH + 1)])
def test_nesting_depth_counts_brackets_outside_strings(text, depth):
    assert nesting_depth(text.encode(), DEPTH) == depth


@pytest.mark.parametrize("text,maybe", [("[1.5, 2e10, -3e-5]", False), ("[NaN]", True), ("[1e308]", True),
                                        ("[" + "1" * 210 + "]", True), ("[1" + "0" * 150 + "]", False),
                                        ('["Infinity"]', True), ("[1E+0400]", True)])
def test_the_non_finite_scan_is_a_superset(text, maybe):
    assert may_hold_non_finite(text.encode()) is maybe
