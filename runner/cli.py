"""The ``runner`` command: thin click shells that parse options and call one function each."""

from __future__ import annotations

import sys
from typing import BinaryIO

import click
import orjson

from runner import __version__
from runner.dialects import build_dialects


@click.group(context_settings={"auto_envvar_prefix": "RUNNER", "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="runner")
def cli() -> None:
    """Run streamed LLM evaluation jobs, store every attempt, and report on them.

    Example: runner run jobs/demo.toml
    """


@cli.command("parse")
@click.option(
    "--dialect",
    "-d",
    required=True,
    type=click.Choice(sorted(build_dialects())),
    help="The wire shape of the stream.",
)
@click.argument("source", type=click.File("rb"), default="-", metavar="[FILE | -]")
def parse_command(dialect: str, source: BinaryIO) -> None:
    """Rebuild a captured SSE body and print the Completion as one JSON object.

    FILE holds the raw bytes a provider sent (``-`` or nothing: standard input). The exit status is
    0 whenever the bytes could be read, also when the stream carried an error or was cut short:
    those are data, shown in "error" and "complete".

    \b
    Example:
      runner parse --dialect openai-chat examples/streams/solrouter_tool_calls.sse
      curl -sN https://api.example.com/v1/chat/completions ... | runner parse -d openai-chat -
    """
    from runner.parse import parse_stream

    completion = parse_stream(dialect, source.read())
    sys.stdout.buffer.write(orjson.dumps(completion.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.buffer.flush()


def main() -> None:
    """Entry point of the ``runner`` console script."""
    cli()
