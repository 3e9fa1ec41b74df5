"""``vllmbench report``: one self-contained HTML file of a run, or of runs side by side."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vllmbench.cli.results import TOKEN_OPTION, URL_OPTION, ResultsClient, fail
from vllmbench.errors import NotFound, UserError, ValidationFailed, VllmbenchError

if TYPE_CHECKING:
    from vllmbench.report import RunData


def from_service(client: ResultsClient, item: str) -> "RunData":
    """RUN or RUN@STAGE from the Results service (records, and per-request samples: from its raw
    report, else those stored apart)."""
    from vllmbench.report.data import run_item

    def rows(run_id: str) -> Any:
        """The samples stored apart, a page of 1000 at a time."""
        path, cursor = f"/runs/{urllib.parse.quote(run_id, safe='')}/requests", None
        while True:
            page = client.get(path, {"limit": 1000, "cursor": cursor})
            yield from page.get("items") or []
            cursor = page.get("next_cursor")
            if not cursor:
                return

    return run_item(item, lambda run_id: client.get(f"/runs/{urllib.parse.quote(run_id, safe='')}"),
                    source=client.base, fetch_rows=rows)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValidationFailed(f"{path} is not JSON: {exc}") from exc


def from_folder(folder: Path) -> "RunData":
    """A ``vllmbench run --out`` folder: records.json, and the requests from raw.json (or requests.jsonl)."""
    from vllmbench.report import run_data

    records_path = folder / "records.json" if folder.is_dir() else folder
    if not records_path.is_file():
        raise NotFound(f"{folder}: no records.json here; give the --out folder of a vllmbench run")
    records = _json(records_path)
    if not isinstance(records, list) or not records:
        raise ValidationFailed(f"{records_path}: expected a non-empty list of standardized records")
    run_id = str(records[0].get("run", {}).get("run_id", folder.name))
    raw_path, lines_path = records_path.parent / "raw.json", records_path.parent / "requests.jsonl"
    if raw_path.is_file():
        return run_data(run_id, records, [_json(raw_path)], source=str(records_path.parent))
    rows = None
    if lines_path.is_file():
        with lines_path.open(encoding="utf-8") as lines:
            rows = [json.loads(line) for line in lines if line.strip()]
    return run_data(run_id, records, rows=rows, source=str(records_path.parent))


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        runs: list[str] = typer.Argument(None, help="Run ids (RUN or RUN@STAGE) in the Results service."),
        folders: list[Path] = typer.Option([], "--from", help="A local `vllmbench run --out` folder; repeat."),
        out: Path = typer.Option(Path("report.html"), "-o", "--output", help="The HTML file to write."),
        results_url: str = URL_OPTION, api_token: str = TOKEN_OPTION,
    ) -> None:
        """Write one self-contained HTML report (works offline): one run, or several side by side.

        The first run is a comparison's baseline: service runs first, then --from folders, in order.
        """
        from vllmbench.report import compare_report, run_report

        items = list(runs or [])
        if not items and not folders:
            raise fail(UserError("name a run id, or give --from DIR (the --out folder of a vllmbench run)"))
        try:
            client = ResultsClient(results_url, api_token)
            loaded = [from_service(client, item) for item in items] + [from_folder(folder) for folder in folders]
            labels = items + [run.run_id for run in loaded[len(items):]]
            now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            html = (run_report(loaded[0], generated_at=now) if len(loaded) == 1
                    else compare_report(loaded, labels=_unique(labels), generated_at=now))
        except VllmbenchError as exc:
            raise fail(exc) from None
        out.write_text(html, encoding="utf-8")
        typer.echo(f"wrote {out} ({len(html.encode()) // 1024 + 1} KB): open it in a browser, no network needed")


def _unique(labels: list[str]) -> list[str]:
    """The same run twice (a folder and the service) gets #2, #3 so that charts can tell them apart."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out
