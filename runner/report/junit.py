"""A run as JUnit XML (``runner export RUN --format junit``): what CI systems render as they render pytest's.

One ``testsuite`` per provider, one ``testcase`` per unit of the job (classname the provider, name
``<case id>#<repeat>``). A unit's outcome is exactly one of: passed; ``failure`` (an assertion failed);
``error`` (the unit ended without a result, or an assertion could not be judged; failed assertions of
the same unit are listed in a ``failure`` beside it, but the test case counts once, as an error); or
``skipped`` (not done). So each suite's tests = passed + failures + errors + skipped. Pure: views in,
XML text out. Built with the stdlib's ElementTree, which escapes markup; characters XML 1.0 cannot hold
at all (most C0 controls, lone surrogates) are dropped first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import TextIO

    from runner.grading.assertions import AssertionOutcome
    from runner.store.records import UnitView

# XML 1.0 "Char": tab, LF, CR, U+0020-U+D7FF, U+E000-U+FFFD, U+10000-U+10FFFF. Anything else cannot be
# written even as a character reference, so it is removed (https://www.w3.org/TR/xml/#charsets).
_NOT_XML: Final = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# An attribute is one line in a CI's list view; the element text carries the whole story.
_MESSAGE_LIMIT: Final = 500
_COUNTS: Final = ("tests", "failure", "error", "skipped", "time")


def clean(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids (ElementTree escapes the rest)."""
    return _NOT_XML.sub("", text)


def _cut(text: str) -> str:
    text = clean(text)
    return text if len(text) <= _MESSAGE_LIMIT else text[:_MESSAGE_LIMIT] + "…"


def _seconds(view: UnitView) -> float:
    """The unit's time: its attempts' durations added up (what it took to get the result)."""
    return sum(a.end_s or 0.0 for a in view.attempts if not a.superseded)


def _describe(outcome: AssertionOutcome) -> str:
    score = "" if outcome.score is None else f" (score {outcome.score:g})"
    return f"{outcome.name}: {outcome.detail}{score}"


def _testcase(view: UnitView) -> tuple[ET.Element, str]:
    """The unit's ``testcase`` element and its outcome: passed, failure, error or skipped."""
    case = ET.Element(
        "testcase",
        classname=clean(view.provider),
        name=clean(f"{view.case_id}#{view.repeat}"),
        time=f"{_seconds(view):.3f}",
    )
    if view.status in ("pending", "running"):
        ET.SubElement(case, "skipped", message=f"not done ({view.status})")
        return case, "skipped"
    outcome = "passed"
    if view.status == "failed":
        final = view.final
        error = final.error if final is not None else None
        kind = error.kind if error is not None else "failed"
        message = error.message if error is not None else "the unit ended without a result"
        status = f" (HTTP {error.http_status})" if error is not None and error.http_status else ""
        element = ET.SubElement(case, "error", message=_cut(message), type=clean(kind))
        element.text = clean(f"{kind}{status}: {message}")
        return case, "error"
    errors = [o for o in view.evaluated if o.error]
    failed = [o for o in view.evaluated if not o.passed and not o.error and not o.pending]
    if not errors and not failed and any(o.pending for o in view.evaluated):
        ET.SubElement(case, "skipped", message="not done (judge grading)")
        return case, "skipped"
    if errors:
        names = ", ".join(o.name for o in errors)
        element = ET.SubElement(case, "error", message=_cut(f"could not judge: {names}"), type="assertion")
        element.text = clean("\n".join(_describe(o) for o in errors))
        outcome = "error"
    if failed:
        names = ", ".join(o.name for o in failed)
        element = ET.SubElement(case, "failure", message=_cut(f"failed: {names}"), type="assertion")
        element.text = clean("\n".join(_describe(o) for o in failed))
        outcome = "error" if errors else "failure"
    return case, outcome


def junit_tree(views: Iterable[UnitView], *, name: str) -> ET.Element:
    """The ``testsuites`` element of a run's units; ``name`` names the whole (the job and run)."""
    suites: dict[str, tuple[ET.Element, dict[str, float]]] = {}
    for view in views:
        if view.provider not in suites:
            suite = ET.Element("testsuite", name=clean(view.provider))
            suites[view.provider] = (
                suite,
                dict.fromkeys(("tests", "failure", "error", "skipped", "time"), 0.0),
            )
        suite, counts = suites[view.provider]
        case, outcome = _testcase(view)
        suite.append(case)
        counts["tests"] += 1
        counts["time"] += float(case.get("time", "0"))
        if outcome != "passed":
            counts[outcome] += 1
    root = ET.Element("testsuites", name=clean(name))
    totals = dict.fromkeys(_COUNTS, 0.0)
    for suite, counts in suites.values():
        _count(suite, counts)
        root.append(suite)
        for key, value in counts.items():
            totals[key] += value
    _count(root, totals)
    return root


def _count(element: ET.Element, counts: dict[str, float]) -> None:
    element.set("tests", str(int(counts["tests"])))
    element.set("failures", str(int(counts["failure"])))
    element.set("errors", str(int(counts["error"])))
    element.set("skipped", str(int(counts["skipped"])))
    element.set("time", f"{counts['time']:.3f}")


def write_junit(views: Iterable[UnitView], out: TextIO, *, name: str) -> int:
    """Write a run's units as JUnit XML to ``out``; return how many test cases.

    The tree is built in memory first (a suite's counts come before its test cases): about a
    kilobyte per unit.
    """
    root = junit_tree(views, name=name)
    ET.indent(root)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ET.tostring(root, encoding="unicode"))
    out.write("\n")
    return int(root.get("tests", "0"))
