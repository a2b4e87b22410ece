"""A templated case's Jinja2 templates, compiled once and rendered per data row. Pure: strings only.

``prompt``, ``system``, message contents (string contents and text parts) and every string of ``expect``
are templates, except the judge's ``rubric`` and ``prompt``, which the judge renders itself (with the
answer). Rendering runs in Jinja2's sandbox with ``StrictUndefined``: a name the row lacks is an error,
never an empty string. The environment has no loader, so a template cannot read a file.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from runner.job.source import join_key, line_of

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from jinja2 import Template, UndefinedError
    from jinja2.sandbox import SandboxedEnvironment

    from runner.errors import ConfigError
    from runner.job.source import Where
    from runner.job.vars import Row

    # The environment a job's templates compile in (runner.job.case names it without importing jinja2).
    TemplateEnvironment: TypeAlias = SandboxedEnvironment

# The fields of a case table whose strings are templates; the rest (tools, params, ids) are sent as written.
TEMPLATED_FIELDS = ("prompt", "system", "messages", "expect")
# expect keys whose strings the judge renders (they see the answer, which does not exist at load).
JUDGE_TEMPLATES = ("judge.rubric", "judge.prompt")
# Jinja2's default delimiters all start with "{": a string without one renders as itself.
_MARK = "{"


def new_environment() -> TemplateEnvironment:
    """The environment templates of one job are compiled in: sandboxed, strict, no loader, no escaping.

    Prompts are not HTML, so nothing is escaped; a trailing newline is part of the prompt, so it is kept.
    Jinja2 is imported here, not at module top: ``runner --help`` imports the job layer and must stay fast.
    """
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@functools.lru_cache(maxsize=256)
def compiled_template(source: str) -> Template:
    """``source`` compiled in one process-wide environment (``new_environment``'s), once per distinct
    source: the judge's rubric and prompt (runner.job.judge).

    Every judged unit renders its grading request on the run's loop as it finishes, and every case
    is tried at load: a new environment and a compile each time held the loop 10-30 ms a unit, which
    every stream's timing then carried. A compiled template renders many times, from any task (Jinja2
    templates are immutable once built); the sources repeat across a job's units, so the cache holds
    them all. A syntax error is raised each time (not cached).
    """
    return _shared_environment().from_string(source)


@functools.cache
def _shared_environment() -> TemplateEnvironment:
    # Made at the first judge (jinja2 is imported then, not by `runner --help`).
    return new_environment()


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseTemplates:
    """The compiled templates of one case table, by dotted key (``cases[0].messages[1].content``)."""

    prefix: str
    where: Where
    templates: Mapping[str, Template]

    @classmethod
    def compile(
        cls, env: TemplateEnvironment, where: Where, table: Mapping[str, Any], prefix: str
    ) -> CaseTemplates:
        """Compile every template string of ``table``; a syntax error names the job file, line and key."""
        templates: dict[str, Template] = {}
        for key, source in template_strings(table, prefix):
            if _MARK not in source:  # no tag can start: it renders as itself, for every row
                continue
            try:
                templates[key] = env.from_string(source)
            except Exception as exc:
                from jinja2 import TemplateSyntaxError  # imported already: env is a Jinja2 environment

                if not isinstance(exc, TemplateSyntaxError):
                    raise
                where_in = f" (template line {exc.lineno})" if "\n" in source else ""
                raise where.error(
                    key,
                    f"template syntax error{where_in}: {exc.message}",
                    "correct the Jinja2 syntax ({{ name }} inserts a var; write {{ '{{' }} for a literal {{)",
                ) from exc
        return cls(prefix=prefix, where=where, templates=templates)

    def render(self, table: Mapping[str, Any], row: Row) -> dict[str, Any]:
        """``table`` with every template rendered with ``row``'s values (a new table; ``table`` unchanged)."""
        rendered = {key: self._render_one(key, template, row) for key, template in self.templates.items()}
        out = dict(table)
        for field in TEMPLATED_FIELDS:
            if field in out:
                out[field] = _replace(out[field], join_key(self.prefix, field), rendered)
        return out

    def _render_one(self, key: str, template: Template, row: Row) -> str:
        try:
            return template.render(row.values)
        # The template is the user's code run in the sandbox: whatever it raises (a name the row lacks,
        # a sandbox refusal, a type error in an expression) is a mistake in the job, told as one.
        except Exception as exc:
            from jinja2 import UndefinedError  # imported already: the template is a Jinja2 one

            if isinstance(exc, UndefinedError):
                raise _undefined(exc, key, row, self._job_place(key)) from exc
            raise row.error(
                f"template {key}{self._job_place(key)} failed: {type(exc).__name__}: {exc}",
                "correct the template, or the row's values it uses",
            ) from exc

    def _job_place(self, key: str) -> str:
        line = line_of(self.where.locations, key)
        return f" ({self.where.path}:{line})" if line is not None else f" ({self.where.path})"


def _undefined(exc: UndefinedError, key: str, row: Row, place: str) -> ConfigError:
    name = re.search(r"'([^']+)' is undefined", exc.message or "")
    columns = ", ".join(row.values) or "none"
    if name is None:  # an attribute or item of a value the row has
        fix = "give the row that value, or correct the template"
    elif row.location is None:
        fix = f"add a {name.group(1)!r} column (or field) to {row.path}, or correct the name in the template"
    else:
        fix = f"add {name.group(1)} to every row of vars, or correct the name in the template"
    return row.error(f"template {key}{place}: {exc.message} (the row has: {columns})", fix)


def template_strings(table: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    """``(dotted key, source)`` of every string of ``table`` that is a template and may hold a tag."""
    for field in ("prompt", "system"):
        value = table.get(field)
        if isinstance(value, str):
            yield join_key(prefix, field), value
    messages = table.get("messages")
    for index, message in enumerate(messages if isinstance(messages, list) else ()):
        key = f"{join_key(prefix, 'messages')}[{index}].content"
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            yield key, content
        for part_index, part in enumerate(content if isinstance(content, list) else ()):
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                yield f"{key}[{part_index}].text", part["text"]
    expect = table.get("expect")
    if isinstance(expect, dict):
        yield from _expect_strings(expect, join_key(prefix, "expect"), join_key(prefix, "expect"))


def _expect_strings(value: Any, key: str, root: str) -> Iterator[tuple[str, str]]:
    if key.removeprefix(root + ".") in JUDGE_TEMPLATES:
        return
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _expect_strings(item, f"{key}.{name}", root)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _expect_strings(item, f"{key}[{index}]", root)


def _replace(value: Any, key: str, rendered: Mapping[str, str]) -> Any:
    """``value`` with the strings at the keys of ``rendered`` replaced; containers copied on the way."""
    if isinstance(value, str):
        return rendered.get(key, value)
    if isinstance(value, dict):
        return {name: _replace(item, f"{key}.{name}", rendered) for name, item in value.items()}
    if isinstance(value, list):
        return [_replace(item, f"{key}[{index}]", rendered) for index, item in enumerate(value)]
    return value
