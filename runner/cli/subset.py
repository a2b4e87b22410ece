"""``runner run``'s options that choose which units run: a subset of a new run's job (``--providers``,
``--cases``, ``--limit``) and, on a resumed run, its failed units too (``--retry failed``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import click

from runner.cli.options import fail

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# The values of runner.run.service.RETRY_CHOICES (a test keeps them equal), spelled out here so that
# `runner run --help` does not import the engine.
RETRY_CHOICES: Final = ("failed",)


def unit_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--retry``, ``--providers`` (parsed into a tuple of names), ``--cases`` and ``--limit``."""
    options = [
        click.option(
            "--retry",
            type=click.Choice(RETRY_CHOICES),
            help="With --resume: also send again the units whose final status is failed (no result), as "
            "new attempts; units with failed assertions have a result and are not sent.",
        ),
        click.option(
            "--providers",
            metavar="A,B",
            callback=_parse_names,
            help="Run only these providers of the job (comma-separated names).",
        ),
        click.option(
            "--cases", "cases_glob", metavar="GLOB", help="Run only the cases whose id matches GLOB ('fr-*')."
        ),
        click.option(
            "--limit", type=click.IntRange(min=1), help="Plan at most N units (the first in plan order)."
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _parse_names(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    from runner.job.subset import parse_names

    try:
        return parse_names(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def check_unit_options(
    *,
    retry: str | None,
    resume: str | None,
    join: str | None,
    providers: tuple[str, ...] | None,
    cases_glob: str | None,
    limit: int | None,
) -> None:
    """Exit 2 when the options that choose units do not fit the run: ``--retry`` reopens a stopped
    run (``--resume``); a subset chooses a new run's units (a resumed or joined run keeps its own)."""
    if retry is not None and not resume:
        fail(
            f"--retry {retry} needs --resume RUN (it reopens a stopped run's failed units; --join works a "
            f"run as it stands): runner run --resume RUN --retry {retry}"
        )
    chosen = {"--providers": providers, "--cases": cases_glob, "--limit": limit}
    given = [name for name, value in chosen.items() if value is not None]
    if given and (resume or join):
        fail(
            f"{', '.join(given)}: only a new run's units are chosen this way; a resumed or joined run "
            "keeps the subset it was started with (leave the option out)"
        )
