"""``vllmbench post-raw``: send another harness's output file to the Results service.

The last step of a job template whose harness cannot post to us (GuideLLM, ``vllm bench
serve``, lm-evaluation-harness): the harness writes its JSON into a folder the two
containers share, and this posts it to ``POST {results_url}/raw_input`` with the
evaluation's run id, where the Results service stores and standardizes it.

A 502/503/504 or no answer at all (the service is scaling from zero, its database is
down) is retried, honouring ``Retry-After``, until ``--wait`` runs out; the same body
posted twice is stored once, so a retry after a lost answer is safe. A refusal (4xx)
fails at once with the service's own message, so the pod fails with a reason a person
can read.
"""

from __future__ import annotations

import glob
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import typer

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
RETRIED = (502, 503, 504)
MAX_PAUSE_S = 30.0


class Refused(Exception):
    """The Results service answered no; retrying the same body will not help."""


class Unreachable(Exception):
    """The Results service did not take the body before the wait ran out."""


def pick_file(pattern: str) -> Path:
    """The file to post: ``pattern`` itself, or the newest match of a glob (lm-eval dates its file name)."""
    if not glob.has_magic(pattern):
        path = Path(pattern)
        if not path.is_file():
            raise FileNotFoundError(f"{pattern} does not exist: the harness wrote no output (see its log)")
        return path
    matches = [Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file()]
    if not matches:
        raise FileNotFoundError(f"no file matches {pattern}: the harness wrote no output (see its log)")
    return max(matches, key=lambda p: (p.stat().st_mtime, str(p)))


def read_output(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not a JSON file: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}; the Results service takes a JSON object")
    return data


def _message(status: int, text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return f"HTTP {status}: {text.strip()[:500]}"
    if not isinstance(body, dict):
        return f"HTTP {status}: {text.strip()[:500]}"
    message = f"HTTP {status} {body.get('error', '')}: {body.get('message', '')}".replace(" :", ":")
    details = [f"{'.'.join(str(p) for p in d.get('loc', []) or [])}: {d.get('msg', '')}"
               for d in body.get("details") or [] if isinstance(d, dict)]
    return message + (" (" + "; ".join(details[:5]) + ")" if details else "")


def post(url: str, body: dict[str, Any], *, token: str | None, wait_s: float, timeout_s: float = 60.0,
         sleep: Any = time.sleep) -> dict[str, Any]:
    """POST ``body`` as JSON; retry while the service is unavailable, for at most ``wait_s`` seconds."""
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    deadline = time.monotonic() + wait_s
    pause, attempt = 1.0, 0
    while True:
        attempt += 1
        retry_after: float | None = None
        try:
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310 - a URL we were given
                text = resp.read().decode("utf-8", errors="replace")
                return json.loads(text) if text.strip() else {}
        except urllib.error.HTTPError as exc:
            with exc:
                text = exc.read().decode("utf-8", errors="replace")
            if exc.code not in RETRIED:
                raise Refused(_message(exc.code, text)) from None
            why = _message(exc.code, text)
            header = exc.headers.get("Retry-After") if exc.headers else None
            retry_after = float(header) if header and header.strip().isdigit() else None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            why = f"no answer: {getattr(exc, 'reason', exc)}"
        left = deadline - time.monotonic()
        if left <= 0:
            raise Unreachable(f"gave up after {attempt} attempt(s) in {wait_s:g} s; last: {why}")
        delay = min(retry_after if retry_after is not None else pause, MAX_PAUSE_S, left)
        typer.echo(f"the Results service is not taking results yet ({why}); retrying in {delay:.0f} s", err=True)
        sleep(delay)
        pause = min(pause * 2, MAX_PAUSE_S)


def register(app: typer.Typer) -> None:
    @app.command("post-raw")
    def post_raw(
        file: str = typer.Argument(..., help="The harness's output JSON, or a glob (the newest match is posted)."),
        harness: str = typer.Option(..., help="guidellm, vllm-bench-serve, lm-eval, ...: picks the converter."),
        harness_version: str = typer.Option(None, help="Version of the harness that wrote the file."),
        run_id: str = typer.Option(..., help="The evaluation's run id."),
        results_url: str = typer.Option(..., envvar="VLLMBENCH_RESULTS_URL", help="Base URL of the Results service."),
        api_token: str = typer.Option(None, envvar="VLLMBENCH_API_TOKEN", help="Token for --results-url."),
        project: str = typer.Option(None),
        model: str = typer.Option(None, help="Served model name."),
        tag: list[str] = typer.Option([], help="Tag for the records; repeat."),
        wait: float = typer.Option(300.0, help="Seconds to keep retrying while the service is unavailable."),
    ) -> None:
        """Post a harness's output file to the Results service's /raw_input with the run id."""
        from pydantic import ValidationError

        from vllmbench.logs import redact
        from vllmbench.models.results import Harness, RawInput

        redact(api_token)
        try:
            path = pick_file(file)
            raw = RawInput(run_id=run_id, project=project or None, model=model or None,
                           harness=Harness(name=harness, version=harness_version or None), tags=list(tag),
                           data=read_output(path))
        except (FileNotFoundError, ValueError) as exc:
            message = str(exc)
            if isinstance(exc, ValidationError):
                message = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                    for e in exc.errors(include_url=False))
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        url = results_url.rstrip("/") + "/raw_input"
        try:
            outcome = post(url, raw.model_dump(mode="json"), token=api_token or os.environ.get("VLLMBENCH_API_TOKEN"),
                           wait_s=wait)
        except Refused as exc:
            typer.echo(f"error: the Results service refused {path} for run {run_id}: {exc}", err=True)
            raise typer.Exit(EXIT_FAILED) from None
        except Unreachable as exc:
            typer.echo(f"error: could not post {path} to {url}: {exc}", err=True)
            raise typer.Exit(EXIT_FAILED) from None
        standardized = outcome.get("standardized") or {}
        state = "stored" if outcome.get("created") else "already stored"
        typer.echo(f"posted {path} ({path.stat().st_size} bytes) for run {run_id}: {state} as raw {outcome.get('id')}, "
                   f"{len(standardized.get('ids') or [])} standardized record(s)")
        if outcome.get("standardized") is None:
            typer.echo(f"warning: the Results service has no converter for harness {harness!r}: stored raw only",
                       err=True)
