"""Per-request samples of a run: a columnar, compressed binary layout, and what is computed from it. Pure.

One *chunk* holds up to ``CHUNK`` requests as columns (docs/results.md has the byte
layout, "VBS1"):

    "VBS1" | u32 header length | header JSON | column 1 | column 2 | ...

Each column is a little-endian array, byte-shuffled (all first bytes, then all second
bytes, ...) and zlib-compressed: times of a run are alike, so their high bytes
compress to almost nothing. Times are integers: microseconds, inter-token gaps in
units of ``itl_unit_us`` (10 us = 0.01 ms unless the writer chose coarser). Every
gap's jitter is information: 100,000 requests of 128 tokens take 9.1 MB at 10 us
when gaps jitter by 50 us, about 12 MB at 200 us, and 3.6 MB at a 100 us unit
(bench_results prints the first figure).

The percentile of any metric is recomputed from the columns with the definition of
``vllmbench.stats`` (numpy's default linear interpolation).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAGIC = b"VBS1"
CHUNK = 8192
ITL_UNIT_US = 10
NONE = -1

# name -> numpy dtype; every column has one value per request except itl (sum of itl_count).
COLUMNS: dict[str, str] = {
    "stage": "<i4", "index": "<i4",
    "scheduled_us": "<i8", "sent_us": "<i8",      # since the stage started; sent -1 when unknown
    "ttft_us": "<i8", "e2e_us": "<i8",            # from the send; -1 when there is none
    "cap_wait_us": "<i8",
    "input_tokens": "<i4", "output_tokens": "<i4",  # -1 when unknown
    "status": "<i2",                              # HTTP status, -1 when none
    "outcome": "u1",                              # index into strings.outcome; 0 is "ok"
    "tokens_from": "u1",                          # index into strings.tokens_from
    "measured": "u1",                             # 1 inside the measurement window (warm-up and cool-down cut)
    "itl_count": "<i4", "itl": "<i4",             # gaps per request, then every gap in 10 us
}
DELTA = ("scheduled_us", "sent_us")               # stored as differences from the previous value

METRICS = ("ttft", "itl", "e2e", "e2e_from_schedule", "tpot", "ntpot", "schedule_delay",
           "input_tokens", "output_tokens")
# The columns each metric reads (outcome, measured and stage are always read).
COLUMNS_FOR: dict[str, tuple[str, ...]] = {
    "ttft": ("ttft_us",), "itl": ("itl", "itl_count"), "e2e": ("e2e_us",),
    "e2e_from_schedule": ("e2e_us", "sent_us", "scheduled_us"),
    "tpot": ("e2e_us", "ttft_us", "output_tokens"), "ntpot": ("e2e_us", "output_tokens"),
    "schedule_delay": ("sent_us", "scheduled_us", "cap_wait_us"),
    "input_tokens": ("input_tokens",), "output_tokens": ("output_tokens",),
}


class SamplesError(ValueError):
    """A chunk that is not in the layout, or a metric these samples cannot give."""


@dataclass
class Samples:
    """Columns of some requests (numpy arrays keyed as COLUMNS) and the strings they index."""

    columns: dict[str, np.ndarray]
    outcomes: list[str] = field(default_factory=lambda: ["ok"])
    tokens_from: list[str] = field(default_factory=lambda: ["unknown"])
    itl_unit_us: int = ITL_UNIT_US

    def __len__(self) -> int:
        return int(self.columns["index"].shape[0])

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]], *, itl_unit_us: int = ITL_UNIT_US) -> "Samples":
        """Rows with the fields of :func:`rows` (``itl_ms`` a list of gaps, times in ms, None for unknown)."""
        outcomes, sources = ["ok"], ["unknown"]
        cols: dict[str, list[int]] = {name: [] for name in COLUMNS}
        for row in rows:
            for name in ("stage", "index"):
                cols[name].append(int(row.get(name) or 0))
            for name in ("scheduled", "sent", "ttft", "e2e", "cap_wait"):
                value = row.get(f"{name}_ms")
                cols[f"{name}_us"].append(NONE if value is None else round(float(value) * 1000))
            for name in ("input_tokens", "output_tokens", "status"):
                value = row.get(name)
                cols[name].append(NONE if value is None else int(value))
            outcome = row.get("outcome") or "ok"
            if outcome not in outcomes:
                outcomes.append(outcome)
            cols["outcome"].append(outcomes.index(outcome))
            source = row.get("tokens_from") or "unknown"
            if source not in sources:
                sources.append(source)
            cols["tokens_from"].append(sources.index(source))
            cols["measured"].append(1 if row.get("measured", True) else 0)
            gaps = row.get("itl_ms") or []
            cols["itl_count"].append(len(gaps))
            cols["itl"].extend(round(float(g) * 1000 / itl_unit_us) for g in gaps)
        if len(outcomes) > 255 or len(sources) > 255:
            raise SamplesError("more than 255 distinct outcomes in one chunk")
        return cls({name: np.asarray(cols[name], dtype=dtype) for name, dtype in COLUMNS.items()}, outcomes, sources,
                   itl_unit_us)

    def slice(self, start: int, stop: int) -> "Samples":
        offsets = self.itl_offsets()
        cols = {name: col[start:stop] for name, col in self.columns.items() if name != "itl"}
        cols["itl"] = self.columns["itl"][offsets[start]:offsets[min(stop, len(self))]]
        return Samples(cols, self.outcomes, self.tokens_from, self.itl_unit_us)

    def itl_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.columns["itl_count"], dtype=np.int64)])

    def rows(self) -> list[dict[str, Any]]:
        """Every request as a JSON-able dict: times in ms (None when unknown), its gaps in ms."""
        c = {name: col.tolist() for name, col in self.columns.items()}
        offsets = self.itl_offsets().tolist()
        out = []
        for i in range(len(self)):
            row: dict[str, Any] = {"stage": c["stage"][i], "index": c["index"][i]}
            for name in ("scheduled", "sent", "ttft", "e2e", "cap_wait"):
                value = c[f"{name}_us"][i]
                row[f"{name}_ms"] = None if value == NONE else value / 1000
            row["itl_ms"] = [g * self.itl_unit_us / 1000 for g in c["itl"][offsets[i]:offsets[i + 1]]]
            for name in ("input_tokens", "output_tokens", "status"):
                row[name] = None if c[name][i] == NONE else c[name][i]
            row["outcome"] = self.outcomes[c["outcome"][i]]
            row["tokens_from"] = self.tokens_from[c["tokens_from"][i]]
            row["measured"] = bool(c["measured"][i])
            out.append(row)
        return out


def encode(samples: Samples, *, chunk: int = 0, chunks: int = 1, first: int = 0) -> bytes:
    """One chunk in the VBS1 layout."""
    blobs, described = [], []
    for name, dtype in COLUMNS.items():
        values = samples.columns[name].astype(dtype, copy=False)
        if name in DELTA and values.size:
            values = np.diff(values, prepend=np.array([0], dtype=values.dtype)).astype(dtype)
        raw = np.ascontiguousarray(values).view(np.uint8).reshape(-1, np.dtype(dtype).itemsize).T.tobytes()
        blob = zlib.compress(raw, 6)
        blobs.append(blob)
        described.append({"name": name, "dtype": dtype, "bytes": len(blob)})
    header = {"layout": "VBS1", "count": len(samples), "first": first, "chunk": chunk, "chunks": chunks,
              "itl_unit_us": samples.itl_unit_us, "columns": described,
              "strings": {"outcome": samples.outcomes, "tokens_from": samples.tokens_from}}
    head = json.dumps(header, separators=(",", ":")).encode()
    return MAGIC + struct.pack("<I", len(head)) + head + b"".join(blobs)


def encode_chunks(samples: Samples) -> list[bytes]:
    """``samples`` as VBS1 chunks of at most CHUNK requests each."""
    total = max(1, -(-len(samples) // CHUNK))
    return [encode(samples.slice(i * CHUNK, (i + 1) * CHUNK), chunk=i, chunks=total, first=i * CHUNK)
            for i in range(total)]


def read_header(data: bytes) -> dict[str, Any]:
    if len(data) < 8 or data[:4] != MAGIC:
        raise SamplesError("not a VBS1 chunk (it must start with the bytes 'VBS1'; see docs/results.md)")
    (length,) = struct.unpack("<I", data[4:8])
    try:
        header = json.loads(data[8:8 + length])
        expected = sum(c["bytes"] for c in header["columns"])
        names = [c["name"] for c in header["columns"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise SamplesError("the VBS1 header is not the JSON docs/results.md describes") from exc
    if names != list(COLUMNS) or len(data) != 8 + length + expected:
        raise SamplesError(f"a VBS1 chunk has the columns {list(COLUMNS)} and nothing after them")
    if not (isinstance(header.get("count"), int) and 0 <= header["count"] <= CHUNK and isinstance(header.get("chunk"), int)
            and isinstance(header.get("chunks"), int) and 0 <= header["chunk"] < header["chunks"] <= 10_000
            and isinstance(header.get("first"), int) and header["first"] >= 0
            and isinstance(header.get("itl_unit_us"), int) and 1 <= header["itl_unit_us"] <= 1000):
        raise SamplesError(f"a VBS1 header needs 0 <= count <= {CHUNK}, 0 <= chunk < chunks <= 10000, first >= 0 "
                           "and 1 <= itl_unit_us <= 1000")
    header["_offset"] = 8 + length
    return header


def decode(data: bytes, names: tuple[str, ...] | None = None) -> tuple[dict[str, Any], Samples]:
    """(header, samples) of a chunk; ``names`` decodes only those columns (and zeros the rest)."""
    header = read_header(data)
    count, at = header["count"], header["_offset"]
    cols: dict[str, np.ndarray] = {}
    for described in header["columns"]:
        name, dtype, size = described["name"], np.dtype(COLUMNS[described["name"]]), described["bytes"]
        blob = data[at:at + size]
        at += size
        if names is not None and name not in names and name not in ("itl_count", "outcome", "measured", "stage"):
            cols[name] = np.zeros(0 if name == "itl" else count, dtype=dtype)
            continue
        try:
            raw = np.frombuffer(zlib.decompress(blob), dtype=np.uint8)
        except zlib.error as exc:
            raise SamplesError(f"column {name} of a VBS1 chunk is not zlib data") from exc
        if raw.size % dtype.itemsize:
            raise SamplesError(f"column {name} of a VBS1 chunk has a partial value")
        values = raw.reshape(dtype.itemsize, -1).T.copy().view(dtype).reshape(-1)
        if name in DELTA:
            values = np.cumsum(values, dtype=dtype)
        cols[name] = values
    lengths = {name: col.shape[0] for name, col in cols.items() if name != "itl"}
    if set(lengths.values()) - {count} or (names is None or "itl" in names) and \
            cols["itl"].shape[0] != int(cols["itl_count"].sum()):
        raise SamplesError("the columns of a VBS1 chunk disagree on the number of requests")
    if names is not None and "itl" not in names:
        cols["itl_count"] = np.zeros(count, dtype=np.int32)  # no gaps decoded: the chunk reads as gapless
    strings = header["strings"]
    return header, Samples(cols, list(strings["outcome"]), list(strings["tokens_from"]), header["itl_unit_us"])


def metric_values(samples: Samples, metric: str, *, measured_only: bool = True) -> np.ndarray:
    """Values of ``metric`` over the successful requests, in its units (ms, or tokens)."""
    c = samples.columns
    keep = c["outcome"] == 0
    if measured_only:
        keep &= c["measured"] == 1
    if metric == "itl":
        if not c["itl_count"].any() and len(samples):
            raise SamplesError("these samples hold no inter-token gaps (the harness kept none); try metric=tpot")
        per_request = np.repeat(keep, c["itl_count"])
        return c["itl"][per_request] * (samples.itl_unit_us / 1000.0)
    ttft, e2e, out = c["ttft_us"], c["e2e_us"], c["output_tokens"]
    if metric == "ttft":
        return ttft[keep & (ttft >= 0)] / 1000.0
    if metric == "e2e":
        return e2e[keep & (e2e >= 0)] / 1000.0
    if metric == "e2e_from_schedule":
        ok = keep & (e2e >= 0) & (c["sent_us"] >= 0)
        return (c["sent_us"][ok] - c["scheduled_us"][ok] + e2e[ok]) / 1000.0
    if metric == "schedule_delay":
        ok = keep & (c["sent_us"] >= 0)
        return np.maximum(0, c["sent_us"][ok] - c["scheduled_us"][ok] - c["cap_wait_us"][ok]) / 1000.0
    if metric == "tpot":
        ok = keep & (e2e >= 0) & (ttft >= 0) & (out > 1)
        return (e2e[ok] - ttft[ok]) / 1000.0 / (out[ok] - 1)
    if metric == "ntpot":
        ok = keep & (e2e >= 0) & (out > 0)
        return e2e[ok] / 1000.0 / out[ok]
    if metric in ("input_tokens", "output_tokens"):
        col = c[metric]
        return col[keep & (col >= 0)].astype(np.float64)
    raise SamplesError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")


def percentiles(values: np.ndarray, ps: list[float]) -> list[float]:
    """numpy's linear percentiles, the definition ``vllmbench.stats`` uses."""
    if values.size == 0:
        raise SamplesError("no successful requests to compute a percentile from")
    return [float(v) for v in np.percentile(values, ps)]


def concat(parts: list[Samples]) -> Samples:
    """One Samples of several (gaps in the finest unit among them)."""
    if len(parts) == 1:
        return parts[0]
    unit = min(p.itl_unit_us for p in parts)
    parts = [p if p.itl_unit_us == unit else Samples({**p.columns, "itl": (p.columns["itl"] * p.itl_unit_us // unit)
                                                     .astype("<i4")}, p.outcomes, p.tokens_from, unit) for p in parts]
    outcomes, sources = ["ok"], ["unknown"]
    cols: dict[str, list[np.ndarray]] = {name: [] for name in COLUMNS}
    for part in parts:
        for name in COLUMNS:
            cols[name].append(part.columns[name])
        for strings, table, name in ((part.outcomes, outcomes, "outcome"), (part.tokens_from, sources, "tokens_from")):
            mapping = []
            for s in strings:
                if s not in table:
                    table.append(s)
                mapping.append(table.index(s))
            cols[name][-1] = np.asarray(mapping, dtype=np.uint8)[part.columns[name]] if len(part) else part.columns[name]
    return Samples({name: np.concatenate(cols[name]) for name in COLUMNS}, outcomes, sources, unit)
