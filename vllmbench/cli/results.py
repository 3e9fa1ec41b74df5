"""``vllmbench results ls|show|compare|export``: the Results service from a terminal."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import typer

from vllmbench.errors import DependencyUnavailable, NotFound, UserError, ValidationFailed, VllmbenchError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
DEFAULT_URL = "http://127.0.0.1:8000"

URL_OPTION = typer.Option(DEFAULT_URL, "--results-url", envvar="VLLMBENCH_RESULTS_URL", help="The Results service.")
TOKEN_OPTION = typer.Option(None, "--api-token", envvar="VLLMBENCH_API_TOKEN", help="Bearer token of the service.")


class ResultsClient:
    """GETs on the Results service; its JSON errors become the project's own."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout_s: float = 60.0) -> None:
        self.base = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v not in (None, [], "")},
                                       doseq=True)
        url = f"{self.base}{path}" + (f"?{query}" if query else "")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise _translate(exc, url) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DependencyUnavailable("results service", f"cannot reach {self.base}: {reason}") from exc
        except ValueError as exc:
            raise DependencyUnavailable("results service", f"{url} answered something that is not JSON") from exc


def _translate(exc: urllib.error.HTTPError, url: str) -> VllmbenchError:
    try:
        body = json.loads(exc.read() or b"{}")
        message = body.get("message") or str(body)[:300]
    except ValueError:
        message = f"HTTP {exc.code} from {url}"
    if exc.code == 401:
        return UserError(f"the Results service wants a token: give --api-token or set VLLMBENCH_API_TOKEN ({message})")
    if exc.code == 404:
        return NotFound(message)
    if exc.code == 422:
        return ValidationFailed(message)
    if exc.code >= 500:
        return DependencyUnavailable("results service", message)
    return UserError(message)


def fail(exc: VllmbenchError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(EXIT_BAD_INPUT if exc.status < 500 else EXIT_FAILED)


def _console() -> Any:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


def _records(items: list[dict[str, Any]]) -> list[Any]:
    from vllmbench.models.results import StandardizedRecord

    return [StandardizedRecord.model_validate(item) for item in items]


def fetch(results_url: str, api_token: str | None, path: str, params: dict[str, Any] | None = None, *,
          as_json: bool = False) -> Any:
    """The service's answer; with ``as_json`` it is printed as it came and None returned."""
    try:
        answer = ResultsClient(results_url, api_token).get(path, params)
    except VllmbenchError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return None
    return answer


def register(app: typer.Typer) -> None:
    results = typer.Typer(help="Stored results: list, show, compare, export.", no_args_is_help=True)
    app.add_typer(results, name="results")

    @results.command("ls")
    def ls(
        project: str = typer.Option(None), model: str = typer.Option(None), run_id: str = typer.Option(None),
        harness: str = typer.Option(None), tag: list[str] = typer.Option([], help="Records carrying every tag; repeat."),
        since: str = typer.Option(None, help="Runs started at or after (ISO 8601)."),
        until: str = typer.Option(None, help="Runs started before (ISO 8601)."),
        sort: str = typer.Option("-time", help="-time (newest first) or time."),
        limit: int = typer.Option(50, help="Page size, at most 500."), cursor: str = typer.Option(None),
        as_json: bool = typer.Option(False, "--json", help="Print the service's JSON page."),
        results_url: str = URL_OPTION, api_token: str = TOKEN_OPTION,
    ) -> None:
        """List standardized records with the API's filters, newest first; one row per run and stage."""
        from vllmbench.report.tables import listing

        params = {"project": project, "model": model, "run_id": run_id, "harness": harness, "tag": tag,
                  "since": since, "until": until, "sort": sort, "limit": limit, "cursor": cursor}
        page = fetch(results_url, api_token, "/standardized_output", params, as_json=as_json)
        if page is None:
            return
        console = _console()
        console.print(listing(_records(page["items"])))
        if page.get("next_cursor"):
            console.print(f"more: --cursor {page['next_cursor']}")

    @results.command("show")
    def show(run: str = typer.Argument(..., help="Run id."),
             as_json: bool = typer.Option(False, "--json", help="Print the service's JSON."),
             results_url: str = URL_OPTION, api_token: str = TOKEN_OPTION) -> None:
        """A run: its scenario, every stage's figures, failures and trust, and its raw results."""
        from vllmbench.harness.summary import print_summary
        from vllmbench.report.tables import raw_table, scenario

        found = fetch(results_url, api_token, f"/runs/{urllib.parse.quote(run, safe='')}", as_json=as_json)
        if found is None:
            return
        console = _console()
        records = _records(found["standardized"])
        if records:
            console.print(scenario(records[0]))
            print_summary(console, records, None)
        else:
            console.print(f"run {run} has no standardized records (its harness output was stored as-is)")
        if found["raw"]:
            console.print(raw_table(found["raw"]))

    @results.command("compare")
    def compare(runs: list[str] = typer.Argument(..., help="Two or more: RUN or RUN@STAGE; the first is the baseline."),
                as_json: bool = typer.Option(False, "--json", help="Print the service's JSON."),
                results_url: str = URL_OPTION, api_token: str = TOKEN_OPTION) -> None:
        """Runs side by side: each metric with its difference to the first."""
        from vllmbench.report.tables import comparison

        if len(runs) < 2:
            raise fail(UserError("give at least two runs to compare, e.g. vllmbench results compare run-a run-b"))
        result = fetch(results_url, api_token, "/compare", {"runs": ",".join(runs)}, as_json=as_json)
        if result is None:
            return
        _console().print(comparison(result))

    @results.command("export")
    def export(run: str = typer.Argument(..., help="Run id."),
               fmt: str = typer.Option("json", "--format", help="llmd (Benchmark Report v0.2), json (records) or csv."),
               out: Path = typer.Option(None, "-o", "--output", help="File to write (default: standard output)."),
               results_url: str = URL_OPTION, api_token: str = TOKEN_OPTION) -> None:
        """A run's standardized records as llm-d reports, JSON or CSV (one line per stage)."""
        from vllmbench.report.flat import to_csv

        if fmt not in ("llmd", "json", "csv"):
            raise fail(UserError(f"--format {fmt!r}: expected llmd, json or csv"))
        client = ResultsClient(results_url, api_token)
        quoted = urllib.parse.quote(run, safe="")
        try:
            if fmt == "llmd":
                text = json.dumps(client.get(f"/runs/{quoted}/llmd"), indent=2) + "\n"
            else:
                records = client.get(f"/runs/{quoted}")["standardized"]
                if not records:
                    raise NotFound(f"run {run!r} has no standardized records")
                text = json.dumps(records, indent=2) + "\n" if fmt == "json" else to_csv(_records(records))
        except VllmbenchError as exc:
            raise fail(exc) from None
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text, encoding="utf-8")
            typer.echo(f"wrote {out} ({os.path.getsize(out)} bytes)", err=True)
