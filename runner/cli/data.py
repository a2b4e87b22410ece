"""``runner parse`` and ``runner export``: read a stream or a stored run back out."""

from __future__ import annotations

import contextlib
import sys
from typing import BinaryIO

import click

from runner.cli.options import check_output_path, db_option, fail, reading
from runner.wire.dialects import names as dialect_names


@click.command("parse")
@click.option(
    "--dialect",
    "-d",
    type=click.Choice(sorted(dialect_names())),
    help="The wire shape of the stream (with --attempt: taken from the run unless given).",
)
@click.option(
    "--attempt",
    "attempt_id",
    # Bounded to the ids a database can hold: a larger one made SQLite raise OverflowError (exit 1).
    type=click.IntRange(min=1, max=2**63 - 1),
    help="Replay the stored capture of this attempt id.",
)
@db_option
@click.option("--raw", is_flag=True, help="With --attempt: write the captured bytes instead of parsing them.")
@click.argument("source", type=click.File("rb"), default="-", metavar="[FILE | -]")
def parse_command(
    dialect: str | None, attempt_id: int | None, db_url: str | None, raw: bool, source: BinaryIO
) -> None:
    """Rebuild a captured SSE body and print the Completion as one JSON object.

    FILE holds the raw bytes a provider sent ('-' or nothing: standard input); --attempt ID reads
    the bytes runner stored for that attempt instead (see --capture of runner run). The exit status
    is 0 whenever the bytes could be read, also when the stream carried an error or was cut short:
    those are data, shown in "error" and "complete".

    \b
    Example:
      runner parse --dialect openai-chat examples/streams/solrouter_tool_calls.sse
      runner parse --attempt 12 --db sqlite:///runner.db
      curl -sN https://api.example.com/v1/chat/completions ... | runner parse -d openai-chat -
    """
    import orjson

    from runner import jsontext
    from runner.job.stored import stored_dialect
    from runner.store import repository
    from runner.wire.replay import parse_body

    status: int | None = None
    if attempt_id is None:
        if dialect is None:
            fail("name the stream's dialect with --dialect (or replay a stored one with --attempt ID)")
        body = source.read()
    else:
        with reading(db_url) as database, database.session() as session:
            capture = repository.stored_capture(session, attempt_id)
            spec = repository.get_run(session, capture.run_id).job_spec
        if capture.body is None:
            fail(
                f"attempt {attempt_id} ({capture.unit_key}) has no stored bytes: "
                "only failed attempts are captured unless the run used --capture all, and never "
                "a capture whose replay would rebuild an API key the provider echoed"
            )
        body, status = capture.body, capture.http_status
        # The run's own job spec names the dialect; the store only keeps it, never reads it.
        dialect = dialect or stored_dialect(spec, capture.provider)
        if raw:
            sys.stdout.buffer.write(body)
            sys.stdout.buffer.flush()
            return
        if dialect is None:
            fail(f"the run does not name provider {capture.provider!r}'s dialect: pass --dialect")
    completion = parse_body(dialect, body, http_status=status)
    sys.stdout.buffer.write(jsontext.dumps(completion.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.buffer.flush()


@click.command("export")
@click.argument("run_ref", metavar="RUN|latest")
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "junit"]),
    default="jsonl",
    show_default=True,
    help="JSON Lines (one record per unit), CSV (first choice flattened), JUnit XML (a test case per unit).",
)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True), help="Default: stdout.")
def export_command(run_ref: str, db_url: str | None, fmt: str, out_path: str | None) -> None:
    """Write one record per unit of a run as JSON Lines, CSV (first choice flattened) or JUnit XML.

    JUnit: a testsuite per provider, a testcase per unit (name CASE#REPEAT) with its failed
    assertions as a failure, a unit without a result as an error, an unfinished one as skipped.

    \b
    Example:
      runner export latest --format csv --out results.csv
      runner export latest --format junit --out junit.xml
    """
    from runner.report.export import write_export
    from runner.report.junit import write_junit
    from runner.store import repository

    if out_path is not None:
        check_output_path(out_path, "--out")
    with reading(db_url) as database, database.session() as session:
        run = repository.get_run(session, run_ref)
        views = repository.iter_units(session, run.id)
        with contextlib.ExitStack() as files:
            out = sys.stdout
            if out_path is not None:
                out = files.enter_context(open(out_path, "w", encoding="utf-8", newline=""))
            if fmt == "junit":
                write_junit(views, out, name=f"{run.job_name} ({run.id})")
            else:
                write_export(views, out, "csv" if fmt == "csv" else "jsonl")
