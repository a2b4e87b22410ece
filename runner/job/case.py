"""A job's ``[[cases]]`` tables and ``cases_file`` lines -> ``CaseSpec``; message and tool checks. Pure."""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError
from runner.grading.assertions import parse_expect
from runner.job.source import Where, check_positive, check_table, join_key, require
from runner.job.template import CaseTemplates
from runner.job.vars import case_rows
from runner.spec import CaseSpec, Expectation
from runner.wire.dialects import get_dialect

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from runner.job.template import TemplateEnvironment
    from runner.job.vars import ReadText
    from runner.spec import ProviderSpec

# Key -> expected type (runner.job.source.check_table); build_case adds the cross-field checks.
_CASE = {
    "id": "str",
    "prompt": "str",
    "messages": "list",
    "system": "str",
    "tools": "list",
    "providers": "list",
    "repeats": "int",
    "params": "table",
    "expect": "table",
    "vars": "list",  # rows expanding the case (runner.job.vars); its strings become templates
    "vars_file": "str",
}


def cases_file_sources(path: str, text: str, *, start: int) -> Iterable[tuple[Where, str, Any]]:
    """The JSON object on each non-blank line of a cases_file, numbered on from ``cases[start]``."""
    index = start
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        prefix = f"cases[{index}]"
        where = Where(path=path, locations={prefix: number})
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise where.error(prefix, f"not valid JSON: {exc.msg}", "write one JSON object per line") from exc
        yield where, prefix, raw
        index += 1


def expand_case(
    where: Where,
    raw: Any,
    prefix: str,
    provider_names: list[str],
    *,
    read: ReadText,
    env: TemplateEnvironment,
) -> Iterator[CaseSpec]:
    """The case at ``prefix``, or with ``vars`` / ``vars_file`` one case per row, ``<id>/<row key>``.

    A case without rows is not templated at all (a literal ``{{`` in it stays as written). A row's case
    is its table with the templates rendered with the row's values, then checked as any case is.
    """
    table = check_table(where, raw, prefix, _CASE)
    rows = case_rows(where, table, prefix, read)
    if rows is None:
        yield build_case(where, table, prefix, provider_names)
        return
    case_id = require(where, table, prefix, "id", "give the case an id unique in the job")
    templates = CaseTemplates.compile(env, where, table, prefix)
    seen: dict[str, int] = {}
    for row in rows:
        if row.key in seen:
            raise row.error(
                f"the case id {case_id}/{row.key} is taken by row {seen[row.key]}",
                "give each row a unique id (or leave id out to number the rows)",
            )
        seen[row.key] = row.number
        case = build_case(where, templates.render(table, row), prefix, provider_names)
        yield dataclasses.replace(case, id=f"{case_id}/{row.key}", vars=row.values)


def build_case(where: Where, raw: Any, prefix: str, provider_names: list[str]) -> CaseSpec:
    """One ``[[cases]]`` table (or cases_file line) at ``prefix``; ``providers`` must name known ones."""
    table = check_table(where, raw, prefix, _CASE)
    case_id = require(where, table, prefix, "id", "give the case an id unique in the job")
    check_positive(where, table, prefix, "repeats", zero=False)
    has_prompt, has_messages = "prompt" in table, "messages" in table
    if has_prompt == has_messages:
        raise where.error(
            prefix, "a case needs exactly one of prompt or messages", "keep prompt or messages, not both"
        )
    system = table.get("system")
    if has_prompt:
        messages: list[Any] = [{"role": "user", "content": table["prompt"]}]
    else:
        messages, system = check_messages(where, table["messages"], f"{prefix}.messages", system)
    tools = table.get("tools", [])
    for index, tool in enumerate(tools):
        check_tool(where, tool, f"{prefix}.tools[{index}]")
    subset = table.get("providers")
    if subset is not None:
        for index, name in enumerate(subset):
            if name not in provider_names:
                close = difflib.get_close_matches(str(name), provider_names, n=1)
                fix = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(provider_names)}"
                raise where.error(f"{prefix}.providers[{index}]", f"unknown provider {name!r}", fix)
    expect = table.get("expect")
    return CaseSpec(
        id=case_id,
        messages=tuple(messages),
        system=system,
        tools=tuple(tools),
        params=dict(table.get("params", {})),
        providers=tuple(subset) if subset is not None else None,
        repeats=table.get("repeats"),
        expect=None if expect is None else _parse_expect(where, expect, f"{prefix}.expect"),
    )


def check_messages(
    where: Where, raw: list[Any], prefix: str, system: str | None
) -> tuple[list[Any], str | None]:
    """Check chat messages; a leading system message moves to ``system`` (dialects send it apart)."""
    if not raw:
        raise where.error(prefix, "must hold at least one message", 'add {role = "user", content = "..."}')
    for index, message in enumerate(raw):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise where.error(
                f"{prefix}[{index}]", "a message needs a role", 'write {role = "user", content = "..."}'
            )
    messages = list(raw)
    if messages[0]["role"] == "system":
        if system is not None or not isinstance(messages[0].get("content"), str):
            raise where.error(
                f"{prefix}[0]", "a system message here conflicts with system", "keep one system prompt"
            )
        system = messages.pop(0)["content"]
    return messages, system


def check_expressible(
    where: Where, case: CaseSpec, prefix: str, providers: Sequence[ProviderSpec], *, shift: int = 0
) -> None:
    """Fail unless every dialect the case runs on can express its messages and tools.

    Args:
        shift: how many messages the loader moved out of the file's list (a leading system message),
            so an error's ``messages[i]`` points at the file's own index.
    """
    for provider in providers:
        if case.providers is not None and provider.name not in case.providers:
            continue
        if provider.role == "judge":  # never sent the case: it is sent grading requests only
            continue
        dialect = get_dialect(provider.dialect)
        try:
            dialect.check_messages(case)
        except ConfigError as exc:
            key = _shifted(exc.key, shift) if exc.key else None
            message = f"{exc.args[0]} (provider {provider.name!r})"
            raise where.error(join_key(prefix, key) if key else prefix, message, exc.fix or "") from exc
        for key, value in case.params.items():
            fix = dialect.param_problem(key, value)
            if fix is not None:
                message = f"case {case.id!r}: {provider.dialect} cannot send {key!r}"
                message += f" (provider {provider.name!r})"
                raise where.error(join_key(prefix, f"params.{key}"), message, fix)


def _shifted(key: str, shift: int) -> str:
    """``messages[i]...`` with ``i`` moved on by ``shift``; any other key unchanged."""
    match = re.match(r"messages\[(\d+)\]", key)
    if match is None or not shift:
        return key
    return f"messages[{int(match.group(1)) + shift}]{key[match.end() :]}"


def check_tool(where: Where, tool: Any, prefix: str) -> None:
    """Fail unless ``tool`` is in OpenAI function format."""
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function" or not function.get("name"):
        raise where.error(
            prefix,
            "a tool must be in OpenAI function format",
            'write {type = "function", function = {name = "...", parameters = {...}}}',
        )


def _parse_expect(where: Where, raw: Any, prefix: str) -> Expectation:
    # runner.grading.assertions owns what an expectation means, so it also parses one; the loader only
    # makes its error point at the file and line.
    try:
        return parse_expect(raw)
    except ConfigError as exc:
        key = join_key(prefix, exc.key) if exc.key else prefix
        raise where.error(key, str(exc.args[0]), exc.fix or "") from exc
