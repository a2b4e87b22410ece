"""JUnit XML export: parsed back, its counts agree with the units, and hostile text stays text."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.grading.assertions import AssertionOutcome
from runner.report.junit import clean, write_junit
from tests.report.factories import HOSTILE, failed_unit, make_run

# The shape of the common JUnit schema (Jenkins' junit-10.xsd, which GitLab, GitHub reporters and
# pytest's own tests follow): element -> allowed attributes and children; required attributes.
SHAPE = {
    "testsuites": ({"name", "tests", "failures", "errors", "skipped", "time"}, {"testsuite"}),
    "testsuite": ({"name", "tests", "failures", "errors", "skipped", "time"}, {"testcase"}),
    "testcase": ({"name", "classname", "time"}, {"failure", "error", "skipped"}),
    "failure": ({"message", "type"}, set()),
    "error": ({"message", "type"}, set()),
    "skipped": ({"message"}, set()),
}
REQUIRED = {"testsuite": {"name", "tests"}, "testcase": {"name", "classname"}}


def _check_shape(element: ET.Element) -> None:
    attributes, children = SHAPE[element.tag]
    assert set(element.attrib) <= attributes, (element.tag, element.attrib)
    assert REQUIRED.get(element.tag, set()) <= set(element.attrib)
    for child in element:
        assert child.tag in children, (element.tag, child.tag)
        _check_shape(child)


def _export(units: object) -> tuple[str, ET.Element]:
    out = io.StringIO()
    write_junit(units, out, name="nightly (r-fix001)")  # type: ignore[arg-type]
    text = out.getvalue()
    return text, ET.fromstring(text.encode("utf-8"))


def test_a_suite_per_provider_a_case_per_unit_with_counts_that_add_up() -> None:
    """Suites per provider; tests = passed + failures + errors + skipped, and the totals are the sums."""
    data = make_run(60)
    units = list(data.units)
    units[1] = replace(units[1], status="pending", attempts=(), completion=None, assertions=())
    text, root = _export(units)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    _check_shape(root)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["mini", "claude", "runware"]
    for suite in suites:
        cases = suite.findall("testcase")
        mine = [u for u in units if u.provider == suite.get("name")]
        assert [c.get("name") for c in cases] == [f"{u.case_id}#{u.repeat}" for u in mine]
        assert {c.get("classname") for c in cases} == {suite.get("name")}
        errors = sum(1 for c in cases if c.find("error") is not None)
        failures = sum(1 for c in cases if c.find("failure") is not None and c.find("error") is None)
        skipped = sum(1 for c in cases if c.find("skipped") is not None)
        assert (suite.get("tests"), suite.get("errors"), suite.get("failures"), suite.get("skipped")) == (
            str(len(mine)),
            str(errors),
            str(failures),
            str(skipped),
        )
        assert errors == sum(u.status == "failed" for u in mine)
        assert failures == sum(u.verdict == "failed assertions" for u in mine)
        assert float(suite.get("time", "")) == pytest.approx(
            sum(float(c.get("time", "")) for c in cases), abs=0.01
        )
    assert root.get("tests") == str(len(units))
    assert int(root.get("skipped", "")) == 1
    assert int(root.get("errors", "")) == sum(int(s.get("errors", "")) for s in suites)


def test_failures_name_the_failed_assertions_and_errors_carry_the_units_error() -> None:
    """A failure lists the failed assertions with reasons; a failed unit's error names its kind."""
    units = list(make_run(6).units)
    scored = AssertionOutcome(name="python", passed=False, score=0.2, detail="too vague")
    unjudged = AssertionOutcome(name="python", passed=False, error=True, detail="KeyError: 'city'")
    held = AssertionOutcome(name="contains", passed=True, detail="all found")
    units[0] = replace(units[0], status="ok", assertions=(held, scored))
    units[1] = replace(units[1], status="ok", assertions=(held, scored, unjudged))
    units[2] = failed_unit(units[2])
    _, root = _export(units[:3])
    first, second, third = root.iter("testcase")
    failure = first.find("failure")
    assert failure is not None
    assert failure.get("message") == "failed: python"
    assert failure.text == "python: too vague (score 0.2)"
    error = second.find("error")
    assert error is not None
    assert (error.get("message"), error.get("type"), error.text) == (
        "could not judge: python",
        "assertion",
        "python: KeyError: 'city'",
    )
    assert second.find("failure") is not None  # listed beside the error, counted once (as an error)
    unit_error = third.find("error")
    final = units[2].final
    assert unit_error is not None
    assert final is not None
    assert final.error is not None
    assert (unit_error.get("type"), unit_error.text) == ("server_error", "server_error (HTTP 503): HTTP 503")


def test_hostile_and_forbidden_characters_stay_text() -> None:
    """Markup in names and reasons is escaped; characters XML 1.0 forbids are dropped, so it parses."""
    nasty = "\x00\x1b[31m" + HOSTILE[0] + "\ufffe"
    units = list(make_run(3, hostile=True).units)
    outcome = AssertionOutcome(name="python", passed=False, detail=nasty)
    units[0] = replace(units[0], status="ok", case_id='c"<&>' + nasty, assertions=(outcome,))
    text, root = _export(units)
    assert "<script>" not in text
    case = next(root.iter("testcase"))
    assert case.get("name", "").startswith('c"<&>[31m<script>')
    failure = case.find("failure")
    assert failure is not None
    assert failure.text == "python: [31m" + HOSTILE[0]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        pytest.param("tab\tnl\ncr\r", "tab\tnl\ncr\r", id="whitespace"),
        pytest.param("a\x00b\x08c\x0bd\x1fe", "abcde", id="c0"),
        pytest.param("\ud800x\udfff", "x", id="lone-surrogates"),
        pytest.param("\ufffe\uffff\U0001f600é", "\U0001f600é", id="non-characters"),
    ],
)
def test_clean_drops_exactly_what_xml_forbids(text: str, kept: str) -> None:
    """Tab, LF, CR and every allowed code point stay; C0 controls, surrogates, U+FFFE/U+FFFF go."""
    assert clean(text) == kept


@given(reason=st.text(), case_id=st.text(min_size=1))
def test_any_text_round_trips_as_well_formed_xml(reason: str, case_id: str) -> None:
    """Whatever a reason or case id holds, the XML parses, and reads back as the text XML can carry."""
    unit = make_run(1).units[0]
    outcome = AssertionOutcome(name="python", passed=False, detail=reason)
    _, root = _export([replace(unit, status="ok", case_id=case_id, assertions=(outcome,))])
    case = next(root.iter("testcase"))
    assert case.get("name") == f"{clean(case_id)}#{unit.repeat}"
    failure = case.find("failure")
    assert failure is not None
    # An XML parser reads a CR in text as a line end (https://www.w3.org/TR/xml/#sec-line-ends).
    expected = clean(f"python: {reason}").replace("\r\n", "\n").replace("\r", "\n")
    assert (failure.text or "") == expected
