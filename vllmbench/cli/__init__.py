"""The ``vllmbench`` command. Each subcommand lives in its own module with a
``register(app)`` function; only the CLI imports typer and rich."""

from __future__ import annotations

import importlib

import typer

# Modules under vllmbench.cli that add commands.
COMMAND_MODULES = ["up", "run", "simulate", "results", "report", "post_raw"]


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="vllmbench",
        help="Benchmark vLLM model servers: the embedded stack, the load generator, the simulator.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in COMMAND_MODULES:
        importlib.import_module(f"vllmbench.cli.{name}").register(app)
    return app


def main() -> None:
    build_app()()
