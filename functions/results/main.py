"""benchmark-results (port 8000): ingest raw and standardized results, query, compare.

functions-framework --target=handle --source=functions/results/main.py --port=8000
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vllmbench.errors import NotFound, UserError, ValidationFailed
from vllmbench.web import Context, FunctionApp, Reply

if TYPE_CHECKING:
    from vllmbench.models.results import RawInput, StandardizedRecord
    from vllmbench.models.samples import PercentileQuery, RequestsQuery
    from vllmbench.query import PageQuery, RawQuery, ResultQuery
    from vllmbench.store.results import ResultsStore

    from functions.results.ingest import Prepared

# Models, store and converters load on the first request that needs them, not at import:
# this module is on the cold-start path of a scale-to-zero function.
RAW_INPUT = "vllmbench.models.results:RawInput"
RECORD_OR_BATCH = "vllmbench.models.results:RecordOrBatch"
PREPARED_BATCH = "functions.results.ingest:parse_batch"  # validated as RECORD_OR_BATCH, maybe in a helper process
RESULT_QUERY = "vllmbench.query:ResultQuery"
RAW_QUERY = "vllmbench.query:RawQuery"
PAGE_QUERY = "vllmbench.query:PageQuery"
REQUESTS_QUERY = "vllmbench.models.samples:RequestsQuery"
PERCENTILE_QUERY = "vllmbench.models.samples:PercentileQuery"

app = FunctionApp(
    "results", service="benchmark-results", port=8000, title="benchmark-results",
    description="Raw and standardized benchmark results: ingest, query, compare, export.",
)
handle = app.handle

RESULT_INGESTED = "dev.vllmbench.result.ingested"
RESULT_RAW = "dev.vllmbench.result.raw"
MAX_COMPARE = 20


@app.on_start
def _indexes(ctx: Context) -> None:
    from vllmbench.store.results import ensure_indexes

    ensure_indexes(ctx.db)


@app.on_start
def _collect_less_often(ctx: Context) -> None:
    import gc

    # This process keeps tens of MB of decoded index nodes (the store's node cache), and a
    # batch of records allocates hundreds of thousands of objects: at Python's default
    # threshold (700) the collector runs every few hundred and rescans what survived, a
    # third of the CPU of an ingest here (docs/results.md, "Ingest"). At 200,000 a batch of
    # 500 records is freed before a collection would scan it (none ran in the bench's
    # ingest of 20,000 records; at 50,000, eight a 10,000, 10-20 us of CPU a record).
    gc.set_threshold(200_000, 20, 10)


def _store(ctx: Context) -> ResultsStore:
    from vllmbench.store.results import ResultsStore

    return ResultsStore.of(ctx.db)


def _ingest_raw(ctx: Context, raw: RawInput) -> dict[str, Any]:
    from vllmbench.standardize import to_standardized

    # Convert first: a harness output we know but cannot read is refused before anything is stored;
    # the raw result and its records are then stored together or not at all.
    records = to_standardized(raw)
    samples = _samples_of(raw)
    outcome = _store(ctx).insert_raw(raw, records, samples=samples)
    key, created = outcome["id"], outcome["created"]
    if created:
        ctx.emit(RESULT_INGESTED, {"run_id": raw.run_id, "raw_id": key, "project": raw.project,
                                   "standardized": (outcome["standardized"] or {}).get("ids", [])}, id=f"raw-{key}")
    return outcome


def _samples_of(raw: RawInput) -> Any:
    if raw.harness.name.lower() not in ("vllmbench", "guidellm", "vllm-bench-serve"):
        return None  # numpy and the extractors load only for harnesses that keep per-request data
    from vllmbench.standardize.samples import samples_of

    return samples_of(raw)


@app.route("POST", "/raw_input", body=RAW_INPUT, status=201, tag="raw", also={200: "the same content was stored already: nothing changed"})
def post_raw(ctx: Context, body: RawInput) -> Reply:
    """Store a harness's raw output as-is (and its standardized records when the harness is known)."""
    outcome = _ingest_raw(ctx, body)
    return Reply(outcome, 201 if outcome["created"] else 200)


@app.route("GET", "/raw_input", query=RAW_QUERY, tag="raw")
def list_raw(ctx: Context, query: RawQuery) -> dict[str, Any]:
    """List raw results (metadata and size; include_data=true adds the outputs): filters, cursor pages."""
    return _store(ctx).list_raw(query)


@app.route("GET", "/raw_input/<raw_id>", tag="raw")
def get_raw(ctx: Context, raw_id: str) -> dict[str, Any]:
    """One raw result, with its data, by the id POST /raw_input answered."""
    return _store(ctx).get_raw(raw_id)


@app.route("POST", "/standardized_output", body=RECORD_OR_BATCH, status=201, tag="standardized",
           also={200: "the same content was stored already: nothing changed"}, parse=PREPARED_BATCH)
def post_standardized(ctx: Context, body: Prepared) -> Reply:
    """Store one standardized record or a batch of up to 1000 (all or nothing; same content again is a no-op)."""
    outcome = _store(ctx).insert_prepared(body)
    if outcome["stored"]:
        ctx.emit(RESULT_INGESTED, {"standardized": outcome["ids"]}, id="std-" + ",".join(outcome["ids"])[:200])
    return Reply(outcome, 201 if outcome["stored"] else 200)


def _json(text: str) -> Any:
    """A JSON answer the store wrote as text (stored records spliced in, not parsed and re-encoded)."""
    import flask

    from vllmbench.logs import scrub

    return flask.Response(scrub(text), mimetype="application/json")


@app.route("GET", "/standardized_output", query=RESULT_QUERY, tag="standardized")
def list_standardized(ctx: Context, query: ResultQuery) -> Any:
    """List standardized records: filter by project, model, run id, harness, tag, time range; cursor pages."""
    return _json(_store(ctx).list_standardized_json(query))


@app.route("GET", "/standardized_output/<record_id>", tag="standardized")
def get_standardized(ctx: Context, record_id: str) -> Any:
    """One standardized record by the id POST /standardized_output answered (run_id#stage, '#' as %23)."""
    return _json(_store(ctx).get_standardized_json(record_id))


@app.route("GET", "/runs/<run_id>", tag="runs")
def get_run(ctx: Context, run_id: str) -> Any:
    """A run's raw and standardized results together."""
    return _json(_store(ctx).run_json(run_id))


@app.route("GET", "/runs/<run_id>/llmd", tag="runs")
def export_llmd(ctx: Context, run_id: str) -> list[dict[str, Any]]:
    """A run's standardized records as llm-d Benchmark Report v0.2 documents (one per stage)."""
    from vllmbench.standardize.llmd import to_llmd

    records = _store(ctx).records_of_run(run_id)
    if not records:
        raise NotFound(f"run {run_id!r} has no standardized records")
    return [to_llmd(r) for r in records]


@app.route("POST", "/standardized_output/llmd", body=dict[str, Any] | list[dict[str, Any]], status=201,
           tag="standardized", also={200: "the same content was stored already: nothing changed"})
def import_llmd(ctx: Context, body: dict[str, Any] | list[dict[str, Any]]) -> Reply:
    """Store llm-d Benchmark Report v0.2 documents as standardized records."""
    from vllmbench.standardize.llmd import from_llmd

    reports = body if isinstance(body, list) else [body]
    if not reports:
        raise UserError("the body is an empty array; send one llm-d report or a non-empty array of them")
    records = [from_llmd(report) for report in reports]
    outcome = _store(ctx).insert_standardized(records)
    return Reply(outcome, 201 if outcome["stored"] else 200)


@app.route("GET", "/compare", tag="runs")
def compare_runs(ctx: Context) -> dict[str, Any]:
    """Compare runs side by side: ?runs=a,b,c (run_id or run_id@stage); the first is the baseline."""
    wanted = [part.strip() for part in ctx.request.args.get("runs", "").split(",") if part.strip()]
    if len(wanted) < 2:
        raise ValidationFailed("query.runs: give at least two runs, e.g. ?runs=run-a,run-b",
                               details=[{"loc": "query.runs", "msg": "at least two run ids", "type": "too_short"}])
    if len(wanted) > MAX_COMPARE:
        raise ValidationFailed(f"query.runs: at most {MAX_COMPARE} runs",
                               details=[{"loc": "query.runs", "msg": f"at most {MAX_COMPARE}", "type": "too_long"}])
    from vllmbench.compare import compare

    by_run = _store(ctx).records_of_runs([item.partition("@")[0] for item in wanted])
    return compare([_pick(by_run, item) for item in wanted])


def _pick(by_run: dict[str, list[StandardizedRecord]], item: str) -> StandardizedRecord:
    run_id, _, stage = item.partition("@")
    records = by_run[run_id]
    if not records:
        raise NotFound(f"run {run_id!r} has no standardized records")
    if stage:
        chosen = [r for r in records if str(r.run.stage) == stage]
        if not chosen:
            raise NotFound(f"run {run_id!r} has no stage {stage}; it has: {', '.join(str(r.run.stage) for r in records)}")
        return chosen[0]
    if len(records) > 1:
        raise UserError(f"run {run_id!r} has {len(records)} stages; name one as {run_id}@STAGE, "
                        f"with STAGE one of {', '.join(str(r.run.stage) for r in records)}")
    return records[0]


# -- reports (docs/report.md) ------------------------------------------------------------
# One self-contained HTML page per run or comparison. vllmbench.report is imported inside
# these handlers only: it stays off the cold-start path.
COMPARE_REPORT_QUERY = "vllmbench.report.params:CompareReportQuery"

if TYPE_CHECKING:
    import flask

    from vllmbench.report import RunData
    from vllmbench.report.params import CompareReportQuery


def _report_run(store: ResultsStore, item: str) -> RunData:
    """One run (or RUN@STAGE) as the report draws it: its per-request samples from its raw
    vllmbench report, else those stored apart (a large run's, another harness's)."""
    from vllmbench.report.data import run_item
    from vllmbench.store.samples import RunSamples

    return run_item(item, store.run, source="the Results service",
                    fetch_rows=lambda run_id: RunSamples(store, run_id).rows())


def _html(page: str, filename: str) -> flask.Response:
    import flask

    from vllmbench.logs import scrub
    from vllmbench.report.page import CSP

    response = flask.Response(scrub(page), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@app.route("GET", "/runs/<run_id>/report", tag="reports")
def run_report(ctx: Context, run_id: str) -> flask.Response:
    """A run as one self-contained HTML page (text/html): scenario, summary, latency, distributions, goodput, trust."""
    from vllmbench.report import run_report as render

    run = _report_run(_store(ctx), run_id)
    return _html(render(run, generated_at=_now()), f"vllmbench-{run.run_id}.html")


@app.route("GET", "/compare/report", query=COMPARE_REPORT_QUERY, tag="reports")
def compare_report(ctx: Context, query: CompareReportQuery) -> flask.Response:
    """Runs side by side as one self-contained HTML page (text/html), with the Pareto front across them."""
    from vllmbench.report import compare_report as render

    store = _store(ctx)
    runs = [_report_run(store, item) for item in query.runs]
    return _html(render(runs, labels=query.runs, generated_at=_now()), "vllmbench-comparison.html")


# -- per-request samples (docs/results.md) ------------------------------------------------
@app.route("POST", "/raw_input/<raw_id>/requests", raw_body=True, status=201, tag="samples")
def post_samples(ctx: Context, raw_id: str, body: bytes) -> Reply:
    """Attach per-request samples to a raw result: one VBS1 chunk (application/octet-stream) per request."""
    from vllmbench.store.samples import MAX_CHUNK_BYTES

    if not body:
        raise UserError("the body is empty; send one VBS1 chunk (docs/results.md) as application/octet-stream")
    if len(body) > MAX_CHUNK_BYTES:
        raise UserError(f"a chunk is at most {MAX_CHUNK_BYTES} bytes; split the samples into more chunks")
    outcome = _store(ctx).attach_samples(raw_id, [body])
    return Reply(outcome, 201 if any(c["created"] for c in outcome["chunks"]) else 200)


@app.route("GET", "/runs/<run_id>/requests", query=REQUESTS_QUERY, tag="samples")
def get_samples(ctx: Context, run_id: str, query: RequestsQuery) -> Any:
    """A run's per-request samples: a JSON page (cursor), or every request as a download (format=jsonl or vbs1)."""
    import flask

    from vllmbench.store.samples import RunSamples

    samples = RunSamples(_store(ctx), run_id)
    if query.format == "json":
        return samples.page(query.cursor, query.limit, query.stage)
    name = f"{run_id}-requests.{query.format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "X-Samples-Complete": str(samples.complete).lower()}
    if query.format == "jsonl":
        from vllmbench.logs import scrub

        lines = (scrub(line) for line in samples.jsonl(query.stage))
        return flask.Response(lines, mimetype="application/x-ndjson", headers=headers)
    if query.stage is not None:
        raise UserError("format=vbs1 downloads the stored chunks whole; leave out stage (or use format=jsonl)")
    return flask.Response(b"".join(samples.raw_bytes(samples.chunks)), mimetype="application/octet-stream",
                          headers=headers)


@app.route("GET", "/runs/<run_id>/percentiles", query=PERCENTILE_QUERY, tag="samples")
def get_percentiles(ctx: Context, run_id: str, query: PercentileQuery) -> dict[str, Any]:
    """Any percentile of any metric, recomputed from the run's per-request samples (e.g. ?metric=ttft&p=99.5)."""
    from vllmbench.store.samples import RunSamples

    return RunSamples(_store(ctx), run_id).percentiles(query.metric, query.p, stage=query.stage, everything=query.all)


@app.event(RESULT_RAW, data=RAW_INPUT)
def on_raw(ctx: Context, event: Any, data: RawInput) -> dict[str, Any]:
    """A benchmark job's raw result: stored like POST /raw_input."""
    outcome = _ingest_raw(ctx, data)
    return {"id": outcome["id"], "created": outcome["created"]}


@app.route("POST", "/dead-letters", raw_body=True, status=201, tag="events",
           also={200: "this dead letter was kept already"})
def post_dead_letter(ctx: Context, body: bytes) -> Reply:
    """The dead-letter sink of every Trigger: events the broker gave up on, kept for people to inspect."""
    from vllmbench.store.dead_letters import DeadLetters
    from vllmbench.web.cloudevents import parse

    event = parse(ctx.request.headers, body)
    created = DeadLetters(ctx.db).add(event.get_attributes(), body)
    return Reply({"id": event["id"], "created": created}, 201 if created else 200)


@app.route("GET", "/dead-letters", query=PAGE_QUERY, tag="events")
def list_dead_letters(ctx: Context, query: PageQuery) -> dict[str, Any]:
    """Events delivery gave up on, newest first, with the error the destination answered."""
    from vllmbench.store.dead_letters import DeadLetters

    return DeadLetters(ctx.db).list(query)
