"""`vllmbench up`: the embedded stack (what `make run` starts)."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        data_dir: Path = typer.Option(Path(".data"), help="Where the database, the Git remote and logs live."),
        demo: bool = typer.Option(True, help="Run a short real benchmark against the simulator once everything is up."),
        exit_after_demo: bool = typer.Option(False, help="Stop once the demo benchmark has finished (for CI and scripts)."),
    ) -> None:
        """Start the six functions (ports 8000-8005), the database, the Git remote and the local broker."""
        from vllmbench.embedded.stack import AlreadyRunning, Stack, wait_for_signal

        token = os.environ.get("VLLMBENCH_API_TOKEN") or None
        stack = Stack(data_dir.resolve(), mongo_url=os.environ.get("MONGO_URL") or None, api_token=token)
        typer.echo("starting vllmbench (embedded defaults)...")
        try:
            stack.start()
        except AlreadyRunning as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        except RuntimeError as exc:
            typer.echo(f"vllmbench could not start: {exc}", err=True)
            raise typer.Exit(1) from None
        try:
            if demo:
                _demo(data_dir.resolve(), token)
            if exit_after_demo:
                return
            typer.echo(f"\nvllmbench is running; logs in {data_dir.resolve() / 'logs'}. Press Ctrl-C to stop.")
            wait_for_signal()
        finally:
            typer.echo("stopping...")
            stack.stop()
            typer.echo("stopped; data kept in " + str(data_dir.resolve()))


def _demo(data_dir: Path, token: str | None) -> None:
    from vllmbench.embedded.demo import run_demo

    typer.echo("\nrunning a short benchmark against the vLLM simulator (--no-demo skips it)...")
    try:
        summary = run_demo("http://127.0.0.1:8000", api_token=token, out_dir=data_dir / "demo", project="demo")
    except Exception as exc:  # the stack stays up: the demo is a convenience, not the service
        typer.echo(f"the demo benchmark failed: {exc}", err=True)
        return
    run_id = summary.get("run_id")
    typer.echo(f"demo run {run_id} stored: http://127.0.0.1:8000/runs/{run_id}")
    for key, value in summary.items():
        if key not in ("run_id", "posted", "files"):
            typer.echo(f"  {key}: {value}")
    typer.echo(f"  files: {data_dir / 'demo'}")
