"""``vllmbench simulate``: serve the vLLM simulator in the foreground."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate(
        port: int = typer.Option(8100, help="TCP port (0 picks a free one)."),
        host: str = typer.Option("127.0.0.1", help="Address to listen on."),
        model: list[str] = typer.Option(["sim-model"], "--model", help="Served model name; repeat for several."),
        ttft_ms: float = typer.Option(20.0, help="Time to first token once a request is running."),
        itl_ms: float = typer.Option(5.0, help="Gap between streamed tokens."),
        jitter_ms: float = typer.Option(0.0, help="Standard deviation added to every TTFT and ITL."),
        max_num_seqs: int = typer.Option(256, help="Requests generated at once; more wait in a queue, as in vLLM."),
        max_model_len: int = typer.Option(4096, help="Prompt + output tokens allowed per request."),
        default_max_tokens: int = typer.Option(16, help="Output tokens when a request gives no max_tokens."),
        error_rate: float = typer.Option(0.0, help="Share of generation requests answered with a 500."),
        disconnect_rate: float = typer.Option(0.0, help="Share of streams dropped halfway."),
        malformed_rate: float = typer.Option(0.0, help="Share of streams carrying one malformed SSE event."),
        seed: int = typer.Option(0, help="Seed of the jitter and fault draws."),
    ) -> None:
        """Serve an OpenAI-compatible vLLM simulator with known latencies (tokens are words)."""
        from vllmbench.simulator import SimConfig, serve_forever

        try:
            config = SimConfig(
                host=host, port=port, models=tuple(model), ttft_ms=ttft_ms, itl_ms=itl_ms, jitter_ms=jitter_ms,
                max_num_seqs=max_num_seqs, max_model_len=max_model_len, default_max_tokens=default_max_tokens,
                error_rate=error_rate, disconnect_rate=disconnect_rate, malformed_rate=malformed_rate, seed=seed,
            )
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

        def ready(bound: int) -> None:
            typer.echo(f"vllmbench-simulator listening on {host}:{bound} serving {', '.join(model)}", err=True)

        try:
            serve_forever(config, on_ready=ready)
        except OSError as exc:
            typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
            raise typer.Exit(1) from exc
