"""`vllmbench up`: the embedded stack (what `make run` starts)."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        data_dir: Path = typer.Option(Path(".data"), help="Where the database, the Git remote and logs live."),
        demo: bool = typer.Option(True, help="Evaluate the demo project once everything is up (a real benchmark, judged)."),
        exit_after_demo: bool = typer.Option(False, help="Stop once the demo benchmark has finished (for CI and scripts)."),
        mlflow: bool = typer.Option(False, envvar="VLLMBENCH_RUN_MLFLOW",
                                    help="Also run a local MLflow server (port 5000) for the MLflow service (docs/mlflow.md)."),
    ) -> None:
        """Start the six functions (ports 8000-8005), the database, the Git remote and the local broker."""
        from vllmbench.embedded.stack import AlreadyRunning, Stack, wait_for_signal

        token = os.environ.get("VLLMBENCH_API_TOKEN") or None
        stack = Stack(data_dir.resolve(), mongo_url=os.environ.get("MONGO_URL") or None, api_token=token, mlflow=mlflow)
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
                _demo(stack, token)
            if exit_after_demo:
                return
            typer.echo(f"\nvllmbench is running; logs in {data_dir.resolve() / 'logs'}. Press Ctrl-C to stop.")
            wait_for_signal()
        finally:
            typer.echo("stopping...")
            stack.stop()
            typer.echo("stopped; data kept in " + str(data_dir.resolve()))


def _demo(stack: object, token: str | None) -> None:
    from vllmbench.embedded.demo import run_demo

    typer.echo("\nthe demo: an evaluation of the demo project on its ModelServer, through the whole system "
               "(--no-demo skips it)...")
    urls = {folder: stack.url(folder) for folder in ("results", "deploy", "eval", "vllm_deploy")}  # type: ignore[attr-defined]
    try:
        run_demo(urls, api_token=token, say=typer.echo)
    except Exception as exc:  # the stack stays up: the demo is a convenience, not the service
        typer.echo(f"the demo evaluation failed: {exc}", err=True)
