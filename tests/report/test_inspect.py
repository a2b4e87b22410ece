"""The inspect data layer and its terminal / JSON renderings, on SQLite and PostgreSQL: unit keys
with `/` in the case id, hostile model output kept off the terminal, the request rebuilt without a key."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from runner import jsontext
from runner.job.plan import Unit
from runner.model import Choice, Completion, ToolCall
from runner.report import inspect, jsonout, terminal
from runner.store import repository
from runner.store.db import open_database
from runner.store.records import UnitFinish
from tests.run.stores import BACKENDS, database_url
from tests.store.factories import FAKE_KEY, failed_attempt, make_job, make_units, ok_attempt

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.orm import Session

# Terminal control: retitle the window, clear the screen, move the cursor, ring the bell.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[10;10Hgotcha\r\x9b31m\u202eevil"


@pytest.fixture(params=BACKENDS)
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    """A migrated SQLite file, or a fresh PostgreSQL schema."""
    with (
        database_url(request.param, tmp_path) as (url, _),
        open_database(url) as db,
        db.session() as sess,
    ):
        yield sess


def _store(session: Session) -> str:
    run = repository.create_run(session, make_job(), host="box", version="0.1.0")
    templated = Unit(key="mini/cap/1/1", provider="mini", case_id="cap/1", repeat=1, request_hash="c" * 64)
    repository.add_units(session, run.id, [*make_units(2), templated])
    first, second, third = repository.claim_units(session, run.id, "w", limit=3, lease_seconds=30.0)
    hostile = Completion(
        model="m",
        complete=True,
        choices=(
            Choice(
                index=0,
                text=HOSTILE,
                reasoning="thinking " + HOSTILE,
                tool_calls=(ToolCall(id="t1", name="get\x1b[2J", arguments='{"city": "\\u001b[2J"}'),),
                finish_reason="stop",
            ),
        ),
    )
    repository.write_batch(
        session,
        [
            UnitFinish(
                unit_id=first.id, owner="w", status="ok", attempt=ok_attempt(first.key, completion=hostile)
            ),
            UnitFinish(unit_id=second.id, owner="w", status="failed", attempt=failed_attempt(second.key)),
            UnitFinish(unit_id=third.id, owner="w", status="ok", attempt=ok_attempt(third.key)),
        ],
    )
    return run.id


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        pytest.param("r-abc234", ("r-abc234", None), id="run"),
        pytest.param("latest/mini/case-0/0", ("latest", "mini/case-0/0"), id="unit"),
        pytest.param("r-abc234/mini/cap/1/1", ("r-abc234", "mini/cap/1/1"), id="slash-in-case"),
    ],
)
def test_split_unit_ref(ref: str, expected: tuple[str, str | None]) -> None:
    """The run is what comes before the first `/`; the unit key keeps every `/` after it."""
    assert inspect.split_unit_ref(ref) == expected


def test_hostile_output_never_reaches_the_terminal_raw(session: Session) -> None:
    """Escape sequences and bidi controls in answers, reasoning and tool calls print as visible pictures."""
    run_id = _store(session)
    detail = inspect.unit_detail(session, run_id, "mini/case-0/0")
    text = "\n".join(terminal.unit_lines(detail))
    assert not any(c in text for c in "\x1b\x07\r\x9b\u202e")
    assert "␛]0;pwned␇␛[2J" in text
    assert "get␛[2J" in text
    raw = "\n".join(terminal.stream_lines(inspect.unit_stream(session, detail)))
    assert "\x1b" not in raw


def test_unit_detail_of_a_templated_case_and_its_json(session: Session) -> None:
    """A key with `/` in its case id is found; --json parses back with the export record's keys."""
    run_id = _store(session)
    detail = inspect.unit_detail(session, run_id, "mini/cap/1/1")
    assert (detail.unit.case_id, detail.unit.repeat, detail.dialect) == ("cap/1", 1, "openai-chat")
    assert detail.request is None  # the stored job has no case "cap/1"
    assert "request: not rebuilt" in "\n".join(terminal.unit_lines(detail))
    data = json.loads(jsontext.dumps(jsonout.unit_json(detail)))
    assert (data["unit"], data["case"], data["verdict"], data["request"]) == (
        "mini/cap/1/1",
        "cap/1",
        "passed",
        None,
    )
    assert len(data["attempt_details"]) == 1


def test_request_is_rebuilt_without_any_key(session: Session) -> None:
    """The request comes from the stored job spec: the job's secret header is redacted, no key is sent."""
    run_id = _store(session)
    detail = inspect.unit_detail(session, run_id, "mini/case-1/0")
    assert detail.request is not None
    assert detail.request.url == "https://api.openai.com/v1/chat/completions"
    assert json.loads(detail.request.body)["messages"] == [{"role": "user", "content": "question 1"}]
    shown = "\n".join(terminal.unit_lines(detail)) + jsontext.dumps(jsonout.unit_json(detail)).decode()
    assert FAKE_KEY not in shown
    assert "Authorization: <redacted>" in shown


def test_unknown_unit_names_the_closest_keys(session: Session) -> None:
    """A typo in a key raises UnknownUnitError with the nearest keys, in the message too."""
    run_id = _store(session)
    with pytest.raises(inspect.UnknownUnitError) as caught:
        inspect.unit_detail(session, run_id, "mini/case-1/1")
    assert caught.value.near[0] == "mini/case-1/0"
    assert "closest: mini/case-1/0" in str(caught.value)


def test_summary_lines_and_json_agree(session: Session) -> None:
    """The terminal summary and --json count the same units per verdict."""
    run_id = _store(session)
    summary = inspect.run_summary(session, run_id)
    lines = terminal.summary_lines(summary)
    assert "units 3: passed 2, failed assertions 0, failed (no result) 1, not done 0" in lines
    data = jsonout.summary_json(summary)
    assert data["units"] == {"total": 3, "passed": 2, "failed_assertions": 0, "failed": 1, "not_done": 0}
    assert [r.run.id for r in inspect.list_runs(session)] == [run_id]
    assert terminal.runs_lines(inspect.list_runs(session))[1].startswith(run_id + "  nightly  running")
