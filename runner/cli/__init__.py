"""The ``runner`` command: a click group of thin shells that parse options and call one function each.

The commands live by topic: ``run``; ``data`` (parse, export); ``reports`` (report, diff, trend,
cost); ``prices``; ``tools`` (simulate, bench, db). Shared option helpers are in ``options``.
"""

from __future__ import annotations

import click

from runner import __version__
from runner.cli.data import export_command, parse_command
from runner.cli.prices import prices_command
from runner.cli.reports import cost_command, diff_command, report_command, trend_command
from runner.cli.run import run_command
from runner.cli.tools import bench_command, db_group, simulate

__all__ = ["cli", "main"]


@click.group(
    commands=[
        run_command,
        parse_command,
        export_command,
        report_command,
        diff_command,
        trend_command,
        cost_command,
        prices_command,
        simulate,
        bench_command,
        db_group,
    ],
    context_settings={"auto_envvar_prefix": "RUNNER", "help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="runner")
def cli() -> None:
    """Run streamed LLM evaluation jobs, store every attempt, and report on them.

    Example: runner run jobs/demo.toml
    """


def main() -> None:
    """Entry point of the ``runner`` console script."""
    cli()
