"""``vllmbench run``: the load generator. Logic lives in ``vllmbench.harness``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNTRUSTWORTHY = 3
MERGE_GRACE_S = 120.0  # shard 0 waits for the other parts: their last requests' timeout, then this


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


def _shard(value: str | None) -> tuple[int | None, int]:
    """``I/N`` (``--shard=$(JOB_COMPLETION_INDEX)/N`` in an Indexed Job) as (I, N)."""
    if not value:
        return None, 1
    index, _, total = value.partition("/")
    try:
        return int(index), int(total)
    except ValueError:
        raise typer.BadParameter(f"--shard {value!r} must be I/N, e.g. 0/4 (shard I of N)") from None


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
        shard: str = typer.Option(None, help="I/N: send arrivals I, I+N, ... of the schedule, one of N client pods "
                                            "sending it together; posts run <run-id>-pI, and shard 0 merges them."),
        start_at: float = typer.Option(None, help="Unix time the schedule starts at (every shard's the same)."),
        stage_gap: float = typer.Option(10.0, help="Sharded sweeps: seconds from the end of a stage's schedule to "
                                                   "the start of the next one."),
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
            shard_index, shards = _shard(shard)
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
                shard_index=shard_index, shards=shards, start_at=start_at, stage_gap_s=stage_gap,
            )
            if rates and concurrencies:
                raise typer.BadParameter("give --rate or --concurrency, not both")
            if cfg.sharded and not results_url:
                raise typer.BadParameter("--shard needs --results-url: the parts meet in the Results service, "
                                         "where shard 0 merges them")
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

                token = api_token or os.environ.get("VLLMBENCH_API_TOKEN")
                post_results(report, results_url, api_token=token)
                console.print(f"posted run {report.config.run_id} to {results_url}")
                if report.config.sharded and report.config.shard_index == 0:
                    report = _merge(report, results_url, token, console)
        except typer.BadParameter as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except VllmbenchError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT if exc.status < 500 else EXIT_FAILED) from None
        if all(r.results.requests.succeeded == 0 for r in report.records):
            typer.echo("error: no request succeeded", err=True)
            raise typer.Exit(EXIT_FAILED)
        if strict and not report.trustworthy:  # shard 0: the merged run's
            typer.echo("error: the run is untrustworthy (see the reasons above) and --strict is set", err=True)
            raise typer.Exit(EXIT_UNTRUSTWORTHY)


def _merge(part: Any, results_url: str, token: str | None, console: Any) -> Any:
    """Shard 0: every part from the Results service, merged and posted as the run."""
    from vllmbench.harness.output import post_results
    from vllmbench.harness.parts import merge_parts
    from vllmbench.harness.summary import print_summary

    cfg = part.config
    console.print(f"waiting for the other {cfg.shards - 1} part(s) of the run ...")
    merged = merge_parts(cfg, results_url, api_token=token, wait_s=cfg.timeout_s + MERGE_GRACE_S)
    console.print(f"merged {cfg.shards} client pods' parts:")
    print_summary(console, merged.records, None)
    post_results(merged, results_url, api_token=token)
    console.print(f"posted run {merged.config.run_id} (merged from {cfg.shards} client pods) to {results_url}")
    return merged
