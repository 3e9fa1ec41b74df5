"""Listing queries: filters, sort and cursors as plain values."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from vllmbench.errors import UserError
from vllmbench.query import ResultQuery, decode_cursor, encode_cursor, mongo_filter, sort_spec

T = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("kwargs,expected", [
    ({}, {}),
    ({"project": "p"}, {"project": "p"}),
    ({"project": "p", "model": "m"}, {"$and": [{"project": "p"}, {"model": "m"}]}),
    ({"tag": ["a", "b"]}, {"tags": {"$all": ["a", "b"]}}),
    ({"since": T}, {"time": {"$gte": T}}),
])
def test_filters(kwargs, expected):
    assert mongo_filter(ResultQuery(**kwargs)) == expected


def test_cursor_round_trip_and_direction():
    cursor = encode_cursor(T, "run-7#0")
    assert decode_cursor(cursor) == (T, "run-7#0")
    newest_first = mongo_filter(ResultQuery(cursor=cursor))
    assert newest_first == {"$or": [{"time": {"$lt": T}}, {"time": T, "_id": {"$lt": "run-7#0"}}]}
    oldest_first = mongo_filter(ResultQuery(cursor=cursor, sort="time"))
    assert oldest_first["$or"][0] == {"time": {"$gt": T}}
    assert sort_spec(ResultQuery(sort="time")) == [("time", 1), ("_id", 1)]


@pytest.mark.parametrize("cursor", ["garbage!", "eyJ4IjoxfQ"])
def test_foreign_cursors_are_user_errors(cursor):
    with pytest.raises(UserError):
        mongo_filter(ResultQuery(cursor=cursor))


@pytest.mark.parametrize("kwargs", [{"limit": 0}, {"limit": 501}, {"since": T, "until": T}, {"surprise": 1}])
def test_invalid_queries(kwargs):
    with pytest.raises(ValidationError):
        ResultQuery(**kwargs)
