"""The ``runner`` command: a click group of thin shells that parse options and call one function each.

The commands live by topic: ``run``; ``inspect`` (runs, show); ``view``; ``data`` (parse, export); ``reports``
(report, diff, trend, cost); ``prices``; ``tools`` (simulate, bench, db). Shared option helpers are in
``options``.
"""

from __future__ import annotations

import errno
import sys

import click

from runner import __version__
from runner.cli.data import export_command, parse_command
from runner.cli.inspect import runs_command, show_command
from runner.cli.prices import prices_command
from runner.cli.reports import cost_command, diff_command, report_command, trend_command
from runner.cli.run import run_command
from runner.cli.tools import bench_command, db_group, simulate
from runner.cli.view import view_command

__all__ = ["cli", "main"]


@click.group(
    commands=[
        run_command,
        runs_command,
        show_command,
        view_command,
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
    # No auto_envvar_prefix: with it every option silently read RUNNER_<COMMAND>_<OPTION> (a stale
    # RUNNER_RUN_MAX_COST=0 stopped runs before they began), undocumented in --help. The one variable
    # runner reads is RUNNER_DB, declared on --db.
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="runner")
def cli() -> None:
    """Run streamed LLM evaluation jobs, store every attempt, and report on them.

    Example: runner run jobs/demo.toml
    """


def main() -> None:
    """Entry point of the ``runner`` console script: every usage error is one ``error: ...`` line.

    click's own handling prints a usage block and "Try ... for help" around the error; scripts and
    people alike read the one line runner prints for every other error, so usage errors get it too.
    """
    try:
        code = cli.main(prog_name="runner", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()  # plain `runner`: the help text, as click prints it
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{where}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except OSError as exc:
        if exc.errno != errno.EPIPE:  # output piped into `head`: stop quietly, as click does
            raise
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
