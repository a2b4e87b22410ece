"""``runner runs`` and ``runner show``: browse stored runs and units in the terminal (thin shells over
``runner.report.inspect``; text from ``report.terminal``, JSON from ``report.jsonout``)."""

from __future__ import annotations

import click

from runner.cli.options import db_option, echo_json, fail, reading


@click.command("runs")
@db_option
@click.option("--job", "job_name", metavar="NAME", help="Only the runs of this job.")
@click.option("--last", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout (keys in the README).")
def runs_command(db_url: str | None, job_name: str | None, last: int, as_json: bool) -> None:
    """List the runs in the database, newest first: status, duration, unit verdicts and cost.

    Example: runner runs --job nightly --last 5
    """
    from runner.report.inspect import list_runs
    from runner.report.jsonout import runs_json
    from runner.report.terminal import runs_lines

    with reading(db_url) as database, database.session() as session:
        rows = list_runs(session, job_name=job_name, last=last)
    if as_json:
        echo_json(runs_json(rows))
    else:
        click.echo("\n".join(runs_lines(rows)))


@click.command("show")
@click.argument("ref", metavar="RUN[/UNIT]")
@db_option
@click.option(
    "--raw", is_flag=True, help="With a UNIT: replay its captured streams read by read, with timings."
)
@click.option(
    "--attempt", "attempt_number", type=click.IntRange(min=1), help="With --raw: only this attempt number."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout (keys in the README).")
def show_command(ref: str, db_url: str | None, raw: bool, attempt_number: int | None, as_json: bool) -> None:
    """Show a run's summary (RUN, or latest), or one unit in full (RUN/provider/case/repeat).

    A unit: its request, every attempt with its timing, error, usage and cost, the answer, reasoning,
    tool calls and assertion outcomes. --raw replays the captured bytes of its attempts.

    \b
    Example:
      runner show latest
      runner show r-7f3k2q/mini/capital/1 --raw
    """
    from runner.cli.summary import breakdown_lines
    from runner.report import inspect, jsonout, terminal

    run_ref, key = inspect.split_unit_ref(ref)
    if key is None and (raw or attempt_number is not None):
        raise click.UsageError("--raw and --attempt need a unit: RUN/provider/case/repeat")
    if attempt_number is not None and not raw:
        raise click.UsageError("--attempt goes with --raw")
    with reading(db_url) as database, database.session() as session:
        if key is None:
            summary = inspect.run_summary(session, run_ref)
            if as_json:
                echo_json(jsonout.summary_json(summary))
            else:
                click.echo(
                    "\n".join(
                        [*terminal.summary_lines(summary), "", *breakdown_lines(summary.failures)]
                    ).rstrip()
                )
            return
        detail = inspect.unit_detail(session, run_ref, key)
        if raw:
            streams = inspect.unit_stream(session, detail, attempt=attempt_number)
            if attempt_number is not None and not streams:
                numbers = ", ".join(str(a.number) for a in detail.unit.attempts) or "none"
                fail(f"unit {detail.unit.key} has no attempt {attempt_number} (its attempts: {numbers})")
            if as_json:
                echo_json(jsonout.streams_json(detail, streams))
            else:
                click.echo(
                    "\n".join(terminal.stream_lines(streams) or [f"unit {detail.unit.key} has no attempt"])
                )
            return
    if as_json:
        echo_json(jsonout.unit_json(detail))
    else:
        click.echo("\n".join(terminal.unit_lines(detail)))
