"""Tests of `runner parse`, parse_stream and the dialect registry, including the hypothesis properties."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner import jsontext
from runner.cli import cli
from runner.errors import ConfigError, RunnerError
from runner.model import PROTOCOL_ERROR, Completion
from runner.wire.dialects import build_dialects, get_dialect, names, registry
from runner.wire.replay import accumulate, parse_stream
from tests.streams import FIXTURES, all_fixtures, dialect_of, fixture

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "streams"


def _assert_storable(completion: Completion) -> None:
    """What the engine does with any result: encode it as JSON (the database's JSON columns) and back."""
    stored = orjson.loads(jsontext.dumps(completion.to_dict()))
    assert stored["complete"] is completion.complete
    assert len(stored["choices"]) == len(completion.choices)
    assert (stored["error"] is None) == (completion.error is None)


def test_registry_is_explicit_and_complete() -> None:
    """The registry names exactly the dialects, and each dialect knows its own name."""
    assert sorted(build_dialects()) == [
        "anthropic-messages",
        "gemini",
        "openai-chat",
        "openai-responses",
        "runware",
    ]
    assert names() == tuple(build_dialects()) == tuple(registry())
    assert all(registry()[name].name == name for name in names())


def test_unknown_dialect_names_the_known_ones() -> None:
    """get_dialect raises ConfigError listing every known dialect."""
    with pytest.raises(
        ConfigError, match="anthropic-messages, gemini, openai-chat, openai-responses, runware"
    ):
        get_dialect("vertex")


def test_every_fixture_has_a_test_home() -> None:
    """Every fixture file is readable by its dialect without a protocol error."""
    for name in all_fixtures():
        completion = parse_stream(dialect_of(name), fixture(name))
        assert completion.error is None or completion.error.type != PROTOCOL_ERROR, name


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in all_fixtures()])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_split_into_reads_gives_the_same_completion(name: str, data: st.DataObject) -> None:
    """For any split of a fixture's bytes into reads (down to one byte) the Completion is identical."""
    raw = fixture(name)
    dialect = get_dialect(dialect_of(name))
    expected = accumulate(dialect.new_accumulator(), [raw])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=60)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert accumulate(dialect.new_accumulator(), pieces) == expected


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in all_fixtures()[:6]])
def test_one_byte_reads_give_the_same_completion(name: str) -> None:
    """Feeding one byte at a time gives the same Completion as one read."""
    raw = fixture(name)
    dialect = get_dialect(dialect_of(name))
    one = accumulate(dialect.new_accumulator(), [raw])
    assert accumulate(dialect.new_accumulator(), [raw[i : i + 1] for i in range(len(raw))]) == one


@pytest.mark.parametrize("dialect", [pytest.param(name, id=name) for name in sorted(names())])
@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(dialect: str, raw: bytes) -> None:
    """Arbitrary bytes never raise: bad input is at most a protocol error in the result."""
    completion = parse_stream(dialect, raw)
    _assert_storable(completion)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "choices",
        "delta",
        "index",
        "content",
        "tool_calls",
        "function",
        "usage",
        "error",
        "type",
        "message",
        "content_block",
        "partial_json",
        "errors",
        "resultIndex",
        "finishReason",
        "finish_reason",
        "object",
    ]
)
SHAPED = st.recursive(
    JSON_VALUES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)


@pytest.mark.slow
@pytest.mark.parametrize("dialect", [pytest.param(name, id=name) for name in sorted(names())])
@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(
                ["", "error", "message_start", "content_block_start", "content_block_delta", "ping"]
            ),
            SHAPED,
        ),
        max_size=8,
    )
)
def test_arbitrary_json_events_never_raise(dialect: str, events: list[tuple[str, object]]) -> None:
    """Well-formed SSE carrying arbitrary JSON of roughly the right shape never raises."""
    raw = "".join(
        (f"event: {name}\n" if name else "") + f"data: {json.dumps(value)}\n\n" for name, value in events
    )
    try:
        completion = parse_stream(dialect, raw.encode())
    except RunnerError:  # the project's own errors are allowed; nothing else is
        return
    _assert_storable(completion)


def test_cli_prints_the_completion() -> None:
    """runner parse prints one JSON object with the model's field names and exits 0."""
    result = CliRunner().invoke(
        cli, ["parse", "--dialect", "openai-chat", str(EXAMPLES / "solrouter_tool_calls.sse")]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert list(out) == ["id", "model", "complete", "error", "choices", "usage", "extras"]
    assert out["complete"] is True
    assert [call["name"] for call in out["choices"][0]["tool_calls"]] == ["get_weather", "get_weather"]
    assert out["usage"]["cost"] == pytest.approx(0.0000492)


def test_cli_reads_stdin_and_exits_0_on_stream_errors() -> None:
    """An errored or cut stream is data: exit 0 with error / complete in the output; - is stdin."""
    result = CliRunner().invoke(cli, ["parse", "-d", "runware", "-"], input=fixture("runware_error.sse"))
    assert result.exit_code == 0
    assert json.loads(result.output)["error"]["type"] == "timeoutProvider"
    cut = CliRunner().invoke(cli, ["parse", "-d", "runware"], input=fixture("runware_content_chunks.sse"))
    assert cut.exit_code == 0
    assert json.loads(cut.output)["complete"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["parse", "--dialect", "vertex", "-"], "'vertex' is not one of", id="unknown-dialect"),
        pytest.param(
            ["parse", "--dialect", "runware", "/nonexistent/x.sse"], "No such file", id="missing-file"
        ),
        pytest.param(["parse", "-"], "name the stream's dialect", id="no-dialect"),
    ],
)
def test_cli_usage_errors_exit_2(args: list[str], message: str) -> None:
    """Usage errors exit 2 with a clear message."""
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output


def test_cli_help_has_an_example() -> None:
    """The parse command's help text carries an example."""
    result = CliRunner().invoke(cli, ["parse", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "runner parse --dialect openai-chat" in result.output


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in sorted(EXAMPLES.glob("*.sse"))])
def test_example_streams_parse_complete(path: Path) -> None:
    """Every bundled example stream parses complete and error-free with its dialect."""
    completion = parse_stream(dialect_of(path.name), path.read_bytes())
    assert completion.complete
    assert completion.error is None


@pytest.mark.slow
def test_console_script_runs_the_demo() -> None:
    """`python -m runner parse` on the README demo stream works as a real process."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "parse",
            "--dialect",
            "openai-chat",
            str(EXAMPLES / "solrouter_tool_calls.sse"),
        ],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["choices"][0]["finish_reason"] == "tool_calls"
    assert FIXTURES.is_dir()


@pytest.mark.slow
def test_replaying_a_stored_attempt_rebuilds_what_was_stored(tmp_path: Path) -> None:
    """`runner parse --attempt ID` rebuilds, from the captured bytes, the completion runner stored."""
    import sqlite3

    db = tmp_path / "r.db"
    job = Path(__file__).resolve().parents[2] / "jobs" / "demo.toml"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "run",
            str(job),
            "--db",
            f"sqlite:///{db}",
            "--capture",
            "all",
            "-q",
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(db) as conn:
        attempt_id, key = conn.execute(
            "SELECT a.id, u.key FROM attempts a JOIN units u ON u.id = a.unit_id "
            "WHERE a.error_kind IS NULL AND u.provider = 'solrouter' ORDER BY a.id LIMIT 1"
        ).fetchone()
    replay = subprocess.run(
        [sys.executable, "-m", "runner", "parse", "--attempt", str(attempt_id), "--db", f"sqlite:///{db}"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    exported = subprocess.run(
        [sys.executable, "-m", "runner", "export", "latest", "--db", f"sqlite:///{db}"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    record = next(r for r in map(json.loads, exported.stdout.splitlines()) if r["unit"] == key)
    rebuilt = json.loads(replay.stdout)
    assert rebuilt["complete"] is True
    assert rebuilt["choices"] == record["choices"]
    raw = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "parse",
            "--attempt",
            str(attempt_id),
            "--raw",
            "--db",
            f"sqlite:///{db}",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert raw.stdout.endswith(b"data: [DONE]\n\n")


@pytest.mark.slow
def test_replaying_an_http_error_attempt_shows_the_providers_error(tmp_path: Path) -> None:
    """A captured HTTP error body replays as the provider's error object, not as an empty stream."""
    import sqlite3

    job = tmp_path / "job.toml"
    job.write_text(
        'name = "e"\n[[providers]]\nname = "p"\ndialect = "openai-chat"\nmodel = "m"\n'
        'simulator = { faults = "1=http_429:ra=0.01" }\n[[cases]]\nid = "c"\nprompt = "hi"\n'
    )
    db = tmp_path / "r.db"
    run = subprocess.run(
        [sys.executable, "-m", "runner", "run", str(job), "--db", f"sqlite:///{db}", "-q", "--report", "-"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(db) as conn:
        (attempt_id,) = conn.execute("SELECT id FROM attempts WHERE http_status = 429").fetchone()
    replay = subprocess.run(
        [sys.executable, "-m", "runner", "parse", "--attempt", str(attempt_id), "--db", f"sqlite:///{db}"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    completion = json.loads(replay.stdout)
    assert completion["choices"] == []
    assert completion["error"]["code"] == "rate_limit_exceeded"
    assert "429" in completion["error"]["message"]
