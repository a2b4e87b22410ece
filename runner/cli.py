"""The ``runner`` command: thin click shells that parse options and call one function each."""

from __future__ import annotations

import click

from runner import __version__


@click.group(context_settings={"auto_envvar_prefix": "RUNNER", "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="runner")
def cli() -> None:
    """Run streamed LLM evaluation jobs, store every attempt, and report on them.

    Example: runner run jobs/demo.toml
    """


def main() -> None:
    """Entry point of the ``runner`` console script."""
    cli()
