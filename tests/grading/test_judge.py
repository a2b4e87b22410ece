"""The judge's verdict: the first JSON object of an answer (fences, prose around) -> the judge outcome."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.errors import ConfigError
from runner.grading.assertions import evaluate, parse_expect
from runner.grading.judge import failed_grading, first_json_object, verdict_outcome
from runner.model import Choice, Completion
from runner.spec import JudgeExpectation

# Text around a verdict: anything without braces (a brace could open an object of its own).
PROSE = st.text(alphabet=st.characters(blacklist_characters="{}", blacklist_categories=["Cs"]), max_size=80)
VERDICTS = st.fixed_dictionaries(
    {"pass": st.booleans(), "score": st.floats(0, 1), "reason": st.text(max_size=40)}
)


@given(before=PROSE, after=PROSE, verdict=VERDICTS, fenced=st.booleans())
def test_the_first_object_is_found_whatever_surrounds_it(
    before: str, after: str, verdict: dict[str, object], fenced: bool
) -> None:
    """A verdict object in any brace-free prose, fenced or not, is extracted exactly."""
    body = json.dumps(verdict)
    if fenced:
        body = f"```json\n{body}\n```"
    assert first_json_object(before + body + after) == verdict


@given(text=PROSE)
def test_text_without_an_object_has_none(text: str) -> None:
    """Prose without braces holds no verdict."""
    assert first_json_object(text) is None


@given(first=VERDICTS, second=VERDICTS)
def test_the_first_of_two_objects_wins(first: dict[str, object], second: dict[str, object]) -> None:
    """Two objects: the first one is the verdict."""
    assert first_json_object(f"{json.dumps(first)} then {json.dumps(second)}") == first


def test_a_brace_that_opens_no_json_is_skipped() -> None:
    """A stray brace (or a non-JSON object) before the verdict does not end the search."""
    text = 'Using {rubric} and {not: json}, my verdict: {"pass": true, "score": 0.9, "reason": "ok"}'
    assert first_json_object(text) == {"pass": True, "score": 0.9, "reason": "ok"}


@pytest.mark.parametrize(
    ("answer", "threshold", "passed", "error", "score"),
    [
        pytest.param('{"pass": true, "score": 0.2, "reason": "r"}', None, True, False, 0.2, id="pass-field"),
        pytest.param('{"pass": false, "reason": "r"}', None, False, False, None, id="fail-no-score"),
        pytest.param('{"pass": false, "score": 0.7}', 0.7, True, False, 0.7, id="threshold-at"),
        pytest.param('{"pass": true, "score": 0.69}', 0.7, False, False, 0.69, id="threshold-below"),
        pytest.param('{"pass": true}', 0.5, False, True, None, id="threshold-no-score"),
        pytest.param('{"score": 0.9}', None, False, True, 0.9, id="no-pass-no-threshold"),
        pytest.param('{"pass": "yes"}', None, False, True, None, id="pass-not-bool"),
        pytest.param('{"pass": true, "score": 7}', None, False, True, None, id="score-out-of-range"),
        pytest.param('{"pass": true, "score": true}', None, False, True, None, id="score-bool"),
        pytest.param("I think it passes.", None, False, True, None, id="no-object"),
        pytest.param("", 0.5, False, True, None, id="empty"),
    ],
)
def test_verdicts(
    answer: str, threshold: float | None, passed: bool, error: bool, score: float | None
) -> None:
    """A threshold compares the score; without one the pass field decides; anything unusable is an error."""
    outcome = verdict_outcome(answer, threshold=threshold)
    assert (outcome.name, outcome.passed, outcome.error) == ("judge", passed, error)
    if not error:
        assert outcome.score == score


def test_the_reason_is_the_detail_and_is_bounded() -> None:
    """The judge's reason becomes the outcome's detail, cut to a bounded length."""
    assert verdict_outcome('{"pass": true, "reason": "cites the source"}', threshold=None).detail == (
        "cites the source"
    )
    long = verdict_outcome(json.dumps({"pass": False, "reason": "x" * 5000}), threshold=None)
    assert len(long.detail) <= 500


def test_a_failed_grading_request_is_an_error_never_a_pass() -> None:
    """A grading unit that failed gives an error outcome naming why."""
    outcome = failed_grading("server_error: HTTP 500")
    assert (outcome.passed, outcome.error) == (False, True)
    assert "HTTP 500" in outcome.detail


def test_the_judge_table_parses_and_is_pending_until_graded() -> None:
    """expect.judge becomes a JudgeExpectation; evaluate gives it a pending outcome, neither pass nor fail."""
    expect = parse_expect(
        {"contains": "a", "judge": {"provider": "j", "rubric": "is {{ x }}", "threshold": 0.5, "prompt": "P"}}
    )
    assert expect.judge == JudgeExpectation(provider="j", rubric="is {{ x }}", threshold=0.5, prompt="P")
    completion = Completion(choices=(Choice(index=0, text="a"),))
    contains, judge = evaluate(expect, completion, ttft_s=None, duration_s=None, cost_usd=None)
    assert contains.passed
    assert (judge.name, judge.passed, judge.pending, judge.error) == ("judge", False, True, False)


@pytest.mark.parametrize(
    ("table", "key", "fix"),
    [
        pytest.param({"rubric": "r"}, "judge.provider", "required", id="no-provider"),
        pytest.param({"provider": "j"}, "judge.rubric", "required", id="no-rubric"),
        pytest.param({"provider": "j", "rubric": "r", "threshold": 2}, "judge.threshold", "0 to 1", id="big"),
        pytest.param(
            {"provider": "j", "rubric": "r", "threshold": True}, "judge.threshold", "0 to 1", id="bool"
        ),
        pytest.param({"provider": "j", "rubric": "r", "model": "x"}, "judge.model", "unknown key", id="key"),
        pytest.param("j", "judge", "must be a table", id="not-table"),
    ],
)
def test_a_bad_judge_table_names_its_key(table: object, key: str, fix: str) -> None:
    """Each problem of a judge table is a ConfigError naming the key and what is wrong."""
    with pytest.raises(ConfigError) as caught:
        parse_expect({"judge": table})
    assert caught.value.key == key
    assert fix in (caught.value.fix or "")
