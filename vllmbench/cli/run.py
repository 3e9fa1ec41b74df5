"""``vllmbench run``: the load generator. Logic lives in ``vllmbench.harness``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNTRUSTWORTHY = 3


def _numbers(values: list[str], kind: type) -> tuple:
    out = []
    for value in values:
        for part in str(value).split(","):
            if part.strip():
                try:
                    out.append(kind(part))
                except ValueError:
                    raise typer.BadParameter(f"{part!r} is not a {'number' if kind is float else 'whole number'}") from None
    return tuple(out)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        url: str = typer.Option(..., help="Base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8000"),
        model: str = typer.Option(None, help="Model name; default: the first one /v1/models lists."),
        endpoint: str = typer.Option("completions", help="completions or chat."),
        stream: bool = typer.Option(True, "--stream/--no-stream", help="Stream tokens (SSE)."),
        api_key: str = typer.Option(None, envvar="VLLMBENCH_TARGET_API_KEY", help="API key of the server under test."),
        rate: list[str] = typer.Option([], help="Requests per second; a comma list or repeated flag makes a sweep."),
        concurrency: list[str] = typer.Option([], help="Requests kept in flight; a list makes a sweep."),
        search: bool = typer.Option(False, help="Search the saturation point, starting at the first --rate."),
        arrival: str = typer.Option("constant", help="constant, poisson or gamma."),
        burstiness: float = typer.Option(1.0, help="Gamma shape (1 = Poisson, < 1 burstier)."),
        duration: float = typer.Option(None, help="Seconds per stage (default 30 unless --requests)."),
        requests: int = typer.Option(None, help="Requests per stage."),
        warmup: float = typer.Option(0.0, help="Seconds at the start of a stage left out of the statistics."),
        cooldown: float = typer.Option(0.0, help="Seconds at the end of a stage left out of the statistics."),
        max_in_flight: int = typer.Option(None, help="Cap on requests in flight; time waiting for it is reported."),
        timeout: float = typer.Option(300.0, help="Seconds before one request counts as a timeout."),
        workers: int = typer.Option(1, help="Processes sending the schedule (rate mode), for rates one cannot hold."),
        dataset: str = typer.Option("synthetic", help="synthetic, jsonl or sharegpt."),
        dataset_path: Path = typer.Option(None, help="Local file for --dataset jsonl or sharegpt."),
        input_len: str = typer.Option("128", help="Prompt tokens: N, uniform:MIN:MAX, normal:MEAN:SD[:MIN:MAX]."),
        output_len: str = typer.Option("128", help="Output tokens, same forms."),
        unique_prompts: bool = typer.Option(True, "--unique-prompts/--shared-prompts",
                                            help="Make each prompt unique so a prefix cache cannot flatter the server."),
        seed: int = typer.Option(0),
        slo_ttft_ms: float = typer.Option(None, help="Goodput SLO on TTFT."),
        slo_itl_ms: float = typer.Option(None, help="Goodput SLO on every inter-token gap."),
        slo_tpot_ms: float = typer.Option(None, help="Goodput SLO on TPOT."),
        slo_e2e_ms: float = typer.Option(None, help="Goodput SLO on end-to-end latency."),
        out: Path = typer.Option(None, help="Folder for requests.jsonl, records.json and raw.json."),
        results_url: str = typer.Option(None, help="Results service to post raw and standardized output to."),
        api_token: str = typer.Option(None, envvar="VLLMBENCH_API_TOKEN", help="Token for --results-url."),
        project: str = typer.Option(None),
        tag: list[str] = typer.Option([], help="Tag for the records; repeat."),
        run_id: str = typer.Option("", help="Run id (default: generated)."),
        strict: bool = typer.Option(False, help="Exit 3 when a stage is untrustworthy."),
        quiet: bool = typer.Option(False, help="No live progress."),
    ) -> None:
        """Send load to an OpenAI-compatible server and report what the server did."""
        from rich.console import Console
        from rich.live import Live

        from vllmbench.errors import VllmbenchError
        from vllmbench.harness.benchmark import run_benchmark
        from vllmbench.harness.config import RunConfig, SloSpec
        from vllmbench.harness.summary import print_summary, progress_line
        from vllmbench.logs import redact

        redact(api_key, api_token)
        console = Console(stderr=False, width=None if os.isatty(1) else 160)
        err = Console(stderr=True)
        try:
            rates, concurrencies = _numbers(rate, float), _numbers(concurrency, int)
            cfg = RunConfig(
                url=url, model=model, endpoint=endpoint, stream=stream, api_key=api_key,
                mode="concurrency" if concurrencies and not rates else "rate",
                rates=rates, concurrencies=concurrencies, search=search, arrival=arrival, burstiness=burstiness,
                duration_s=duration if duration is not None else (None if requests else 30.0),
                request_count=requests, warmup_s=warmup, cooldown_s=cooldown, max_in_flight=max_in_flight,
                timeout_s=timeout, workers=workers, dataset=dataset,
                dataset_path=str(dataset_path) if dataset_path else None, input_len=input_len, output_len=output_len,
                unique_prompts=unique_prompts, seed=seed,
                slo=SloSpec(slo_ttft_ms, slo_itl_ms, slo_tpot_ms, slo_e2e_ms),
                run_id=run_id, project=project, tags=tuple(tag),
            )
            if rates and concurrencies:
                raise typer.BadParameter("give --rate or --concurrency, not both")
            live = None if quiet else Live("starting", console=err, auto_refresh=False, transient=True)
            if live:
                live.start()
            try:
                report = run_benchmark(
                    cfg,
                    progress=(lambda snap: live.update(progress_line(snap), refresh=True)) if live else None,
                )
            finally:
                if live:
                    live.stop()
            print_summary(console, report.records, report.saturation)
            if out:
                from vllmbench.harness.output import write_files

                for path in write_files(report, out):
                    console.print(f"wrote {path}")
            if results_url:
                from vllmbench.harness.output import post_results

                post_results(report, results_url, api_token=api_token or os.environ.get("VLLMBENCH_API_TOKEN"))
                console.print(f"posted run {report.config.run_id} to {results_url}")
        except typer.BadParameter as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except VllmbenchError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT if exc.status < 500 else EXIT_FAILED) from None
        if all(r.results.requests.succeeded == 0 for r in report.records):
            typer.echo("error: no request succeeded", err=True)
            raise typer.Exit(EXIT_FAILED)
        if strict and not report.trustworthy:
            typer.echo("error: the run is untrustworthy (see the reasons above) and --strict is set", err=True)
            raise typer.Exit(EXIT_UNTRUSTWORTHY)
