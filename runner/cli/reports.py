"""``runner report``, ``diff``, ``trend`` and ``cost``: thin shells over ``runner.report.api``."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from runner.cli.options import check_output_path, db_option, echo_json, fail, reading


def _day(value: datetime | None, *, end: bool = False) -> datetime | None:
    """A --since/--until date as a UTC instant; --until names the last day included."""
    if value is None:
        return None
    start = value.replace(tzinfo=UTC)
    return start + timedelta(days=1) if end else start


@click.command("report")
@click.argument("run_ref", metavar="RUN|latest")
@db_option
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="Default: report-RUN.html."
)
def report_command(run_ref: str, db_url: str | None, out_path: Path | None) -> None:
    """Write a run's self-contained HTML report (summary, providers, charts, every case).

    Example: runner report latest --out tonight.html
    """
    from runner.report.api import write_run_report

    check_output_path(out_path, "--out", makes_folders=True)
    with reading(db_url) as database, database.session() as session:
        path = write_run_report(session, run_ref, out_path)
    click.echo(f"wrote {path.resolve()}")


@click.command("diff")
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@db_option
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="Default: diff-A-B.html."
)
@click.option(
    "--ttft", type=float, default=0.20, show_default=True, help="Max relative TTFT p50/p90 increase."
)
@click.option(
    "--duration", type=float, default=0.20, show_default=True, help="Max relative duration increase."
)
@click.option(
    "--error-rate", type=float, default=0.05, show_default=True, help="Max failed-attempt share increase."
)
@click.option(
    "--cost", type=float, default=0.10, show_default=True, help="Max relative cost-per-unit increase."
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="Chance of any false alarm on two runs of an unchanged job (Holm over all the figures' tests).",
)
@click.option(
    "--min-samples",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Fewer attempts (units) a side: a figure is shown but not tested.",
)
@click.option(
    "--min-matched",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Fewer units in both runs: no pass, exit 2.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (keys in the README).")
def diff_command(
    run_a: str,
    run_b: str,
    db_url: str | None,
    out_path: Path | None,
    ttft: float,
    duration: float,
    error_rate: float,
    cost: float,
    alpha: float,
    min_samples: int,
    min_matched: int,
    as_json: bool,
) -> None:
    """Compare run B against baseline run A; exit 1 when anything regressed, 2 when too little matched.

    Units are matched by provider, case and repeat. A unit of A missing in B is a regression. A
    figure (TTFT, duration, error rate, pass rate, cost per unit) regresses when it got worse by more
    than its threshold and a significance test says that is beyond chance (Mann-Whitney U or Fisher's
    exact test, Holm-adjusted p-value under --alpha).

    Example: runner diff r-abc123 latest --ttft 0.3
    """
    from runner.report.api import build_diff_report, write_diff_report
    from runner.report.diff import Thresholds, summary_lines

    check_output_path(out_path, "--out", makes_folders=True)
    limits = Thresholds(
        ttft=ttft,
        duration=duration,
        error_rate=error_rate,
        cost=cost,
        alpha=alpha,
        min_samples=min_samples,
        min_matched=min_matched,
    )
    with reading(db_url) as database, database.session() as session:
        context = build_diff_report(session, run_a, run_b, thresholds=limits)
    path = write_diff_report(context, out_path)
    if as_json:
        from runner.report.jsonout import diff_json

        echo_json(diff_json(context, path.resolve()))
    else:
        click.echo(f"wrote {path.resolve()}")
        click.echo("\n".join(summary_lines(context)))
    if not context.is_conclusive:
        fail(
            f"only {context.matched} units matched between {context.run_a.id} and {context.run_b.id} "
            f"(--min-matched {min_matched}): not a pass; compare two runs of the same job, "
            "or lower --min-matched"
        )
    if context.regressions:
        sys.exit(1)


@click.command("trend")
@click.argument("job_name", metavar="JOB")
@db_option
@click.option("--last", type=click.IntRange(min=1), default=10, show_default=True, help="How many runs.")
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="Default: trend-JOB.html."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (keys in the README).")
def trend_command(job_name: str, db_url: str | None, last: int, out_path: Path | None, as_json: bool) -> None:
    """Chart a job's last N runs per provider: latency, errors, retries, assertions and cost.

    Example: runner trend nightly-smoke --last 14
    """
    from runner.report.api import build_trend_report, write_trend_report
    from runner.store.db import display_url, resolve_url

    check_output_path(out_path, "--out", makes_folders=True)
    with reading(db_url) as database, database.session() as session:
        context = build_trend_report(session, job_name, last=last)
    if not context.runs:
        fail(f"no runs of job {job_name!r} in database {display_url(resolve_url(db_url))}")
    path = write_trend_report(context, out_path).resolve()
    if as_json:
        from runner.report.jsonout import trend_json

        echo_json(trend_json(context, path))
    else:
        click.echo(f"wrote {path}")


@click.command("cost")
@db_option
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="First day included (UTC).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last day included (UTC).")
@click.option(
    "--by", default="provider", show_default=True, help="Comma-separated: provider,model,day,tag,job."
)
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write HTML here."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (keys in the README).")
def cost_command(
    db_url: str | None,
    since: datetime | None,
    until: datetime | None,
    by: str,
    html_path: Path | None,
    as_json: bool,
) -> None:
    """Tokens and USD by group, reported vs computed cost, and cost wasted on failed attempts.

    Example: runner cost --since 2025-11-01 --by provider,day --html cost.html
    """
    from rich.console import Console

    from runner.report.api import build_cost_report, write_cost_report
    from runner.report.cost import cost_table

    if html_path is not None:
        check_output_path(html_path, "--html", makes_folders=True)
    groups = tuple(name.strip() for name in by.split(",") if name.strip())
    try:
        with reading(db_url) as database, database.session() as session:
            context = build_cost_report(session, by=groups, since=_day(since), until=_day(until, end=True))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--by") from exc
    if as_json:
        from runner.report.jsonout import cost_json

        written = write_cost_report(context, html_path).resolve() if html_path is not None else None
        echo_json(cost_json(context, written))
        return
    # Piped output has no terminal width: rich would assume 80 columns, so a pipe gets 200 unless
    # COLUMNS says otherwise (rich reads COLUMNS itself, on a terminal too).
    console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200)
    console.print(cost_table(context, width=console.width))
    if html_path is not None:
        click.echo(f"wrote {write_cost_report(context, html_path).resolve()}")
