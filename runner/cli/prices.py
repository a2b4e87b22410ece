"""``runner prices``: what prices a run would freeze, per model or per provider of a job, and from where."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from runner.cli.options import fail
from runner.errors import ConfigError

_FIGURES = (
    ("input", "input"),
    ("output", "output"),
    ("cached_input", "cached input"),
    ("cache_write", "cache write"),
)


@click.command("prices")
@click.argument("models", nargs=-1)
@click.option("--base-url", metavar="URL", help="The provider's base URL; it picks the catalog's provider.")
@click.option(
    "--job",
    "job_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Show each provider of this job file instead (a declared price wins).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
def prices_command(
    models: tuple[str, ...], base_url: str | None, job_path: Path | None, as_json: bool
) -> None:
    """Print the USD per million tokens a run would use, and where each price comes from.

    A provider that declares no price takes the genai-prices catalog's (its bundled data: no network);
    a model the catalog does not know has no price. Exit 0 either way; 2 on a bad job file.

    Example: runner prices gpt-4o-mini claude-sonnet-4-5 --json
    """
    from runner.job import load_job
    from runner.job.catalog import job_price_rows, price_rows

    if not models and job_path is None:
        raise click.UsageError("name at least one MODEL, or --job JOB")
    now = datetime.now(UTC)
    try:
        rows = job_price_rows(load_job(job_path), at=now) if job_path else []
    except ConfigError as exc:
        fail(str(exc))
    rows += price_rows(models, base_url=base_url, at=now)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(_line(row))


def _line(row: dict[str, Any]) -> str:
    """One row as text: the model (and provider), its figures, then where they come from."""
    name = f"{row['provider']} ({row['model']})" if "provider" in row else row["model"]
    if row["input"] is None:
        return f"{name}: {row['note']}"
    figures = ", ".join(f"{label} ${row[key]:g}" for key, label in _FIGURES)
    where = row["note"] if row["source"] == "catalog" else "job file"
    return f"{name}: {figures} per million tokens; from {where}"
