"""The one Jinja2 environment of the reports, its formatting filters, and where the templates live.

Autoescaping is on for every template and nothing built from model output is ever marked safe:
answers, reasoning, tool arguments and error messages reach the page as text, never as markup
(``visible`` escapes first, then shows control characters as escapes in spans it writes itself).
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from runner.store.db import data_dir

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from pathlib import Path
    from typing import TypeAlias

    from runner.report.cost import CostContext
    from runner.report.diff import DiffContext
    from runner.report.run import RunReportContext
    from runner.report.trend import TrendContext

    ReportContext: TypeAlias = RunReportContext | DiffContext | TrendContext | CostContext

MISSING: Final = "\u2013"  # an en dash, shown for a figure that was not measured
# Characters that would act instead of being seen: C0 controls but tab and newline, DEL, C1 controls,
# and the bidi controls (LRM/RLM, embeddings and overrides, isolates). An RLO in an answer would show
# "gnp.exe" as "exe.png"; a raw NUL is not even valid in an HTML document.
CONTROLS: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def reports_dir() -> Path:
    """The templates directory, inside an installed wheel or the source checkout (never the cwd)."""
    return data_dir("reports", "_base.html")


def seconds(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:,.2f} s"


def wall(value: float | None) -> str:
    """A long duration as hours, minutes and seconds."""
    if value is None or value < 60:
        return seconds(value)
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def usd(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"${value:,.2f}" if abs(value) >= 100 else f"${value:.4f}"


def signed_usd(value: float | None) -> str:
    return MISSING if value is None else ("+" if value >= 0 else "-") + usd(abs(value))


def percent(value: float | None) -> str:
    return MISSING if value is None else f"{100 * value:.1f} %"


def signed_percent(value: float | None) -> str:
    return MISSING if value is None else f"{100 * value:+.1f} %"


def count(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.0f}"


def number(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.1f}"


def timestamp(value: datetime | None) -> str:
    return MISSING if value is None else value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def no_nul(value: object) -> object:
    """Every value a template prints, with U+0000 shown as U+2400: a NUL from a model's output
    must not reach the page as a raw byte (browsers and tools treat it as the end of the text)."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\u2400")  # Markup.replace keeps a Markup a Markup
    return value


def _control(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    # C0 controls and DEL have their own pictures (U+2400-U+2421): one glyph, as wide as a character.
    glyph = chr(0x2400 + code) if code < 0x20 else "\u2421" if code == 0x7F else f"\\u{code:04x}"
    name = unicodedata.name(char, "control character")
    return f'<span class="ctl" title="U+{code:04X} {name}">{glyph}</span>'


def visible(value: str | None) -> Markup:
    """``value`` escaped, with each control character shown as a visible escape in a ``ctl`` span."""
    if value is None:
        return Markup()
    return Markup(CONTROLS.sub(_control, str(escape(value))))


def make_environment(directory: Path | Sequence[Path] | None = None) -> Environment:
    """The reports' only Environment: strict about undefined names, escaping everything.

    ``directory`` may be a list, searched in order (the viewer puts its own frame before the reports').
    """
    env = Environment(
        loader=FileSystemLoader(directory or reports_dir()),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=no_nul,
    )
    env.filters.update(
        seconds=seconds,
        wall=wall,
        usd=usd,
        signed_usd=signed_usd,
        percent=percent,
        signed_percent=signed_percent,
        count=count,
        number=number,
        timestamp=timestamp,
        visible=visible,
    )
    return env


def render(env: Environment, report: ReportContext) -> str:
    """Render one report context with the template its type names; the page gets only ``report``."""
    return env.get_template(report.template).render(report=report)


def stream_report(env: Environment, report: ReportContext, path: Path) -> Path:
    """Render ``report`` into ``path`` piece by piece (``Template.generate``): the page is never one
    string in memory, so a large run's report costs its context, not its file size, in memory.

    Written next to ``path`` and renamed over it when complete: a reader never opens half a report.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            # Output is buffered by the file: the generator's many small pieces become few writes.
            out.writelines(env.get_template(report.template).generate(report=report))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_report(path: Path, html: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
