"""The judge's side of a job: checking a case's ``judge`` at load, and rendering its grading request. Pure.

A grading request is one user message: the case's ``prompt`` of the judge table (or
``DEFAULT_GRADING_PROMPT``) rendered in the job's Jinja2 sandbox with ``rubric`` (itself a template of the
row's vars), ``question`` (the case's rendered system prompt and messages), ``answer`` (the unit's final
text, tool calls shown) and the row's vars. Both templates are compiled and tried at load, so a name the
row lacks is a load error, never a grading-time surprise.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from runner.errors import ConfigError
from runner.job.template import compiled_template

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner.job.source import Where
    from runner.model import Completion
    from runner.spec import CaseSpec, JobSpec, JudgeExpectation, ProviderSpec

# The grading request a judge gets unless the case's judge table sets ``prompt`` (README shows it
# verbatim; a test keeps the two equal). It asks for the object runner.grading.judge reads.
DEFAULT_GRADING_PROMPT: Final = """\
You are grading an answer to a question against a rubric.

<question>
{{ question }}
</question>

<answer>
{{ answer }}
</answer>

<rubric>
{{ rubric }}
</rubric>

Reply with one JSON object and nothing else:
{"pass": true or false, "score": a number from 0 to 1, "reason": "one sentence"}
"""
# What a template may name besides the row's vars (a var of one of these names is shadowed).
GRADING_NAMES: Final = ("rubric", "question", "answer")


def check_judge(where: Where, prefix: str, case: CaseSpec, providers: Sequence[ProviderSpec]) -> None:
    """A case's judge names a judge provider of the job, and its templates render with the row's vars.

    Raises:
        ConfigError: naming the case's ``expect.judge`` key, with the fix.
    """
    judge = case.expect.judge if case.expect is not None else None
    if judge is None:
        return
    key = f"{prefix}.expect.judge"
    roles = {p.name: p.role for p in providers}
    if judge.provider not in roles:
        raise where.error(
            f"{key}.provider",
            f"no provider {judge.provider!r} in the job",
            f'add a [[providers]] table with name = "{judge.provider}" and role = "judge"',
        )
    if roles[judge.provider] != "judge":
        raise where.error(
            f"{key}.provider",
            f"provider {judge.provider!r} is not a judge",
            f'set role = "judge" on provider {judge.provider!r} (a judge is never sent the cases)',
        )
    try:
        grading_prompt(judge, case, answer="")
    except ConfigError as exc:
        raise where.error(f"{key}.{exc.key or 'rubric'}", str(exc.args[0]), exc.fix or "") from exc


def check_judges_used(where: Where, job_providers: Sequence[ProviderSpec], cases: Sequence[CaseSpec]) -> None:
    """Every judge provider grades some case, and some provider is a target (errors, not warnings:
    an unused judge is a typo in a case's ``judge.provider`` more often than not)."""
    if all(p.role == "judge" for p in job_providers):
        raise where.error(
            "providers", "every provider is a judge", 'give at least one provider role = "target"'
        )
    used = {c.expect.judge.provider for c in cases if c.expect is not None and c.expect.judge is not None}
    for index, provider in enumerate(job_providers):
        if provider.role == "judge" and provider.name not in used:
            raise where.error(
                f"providers[{index}].role",
                f"judge provider {provider.name!r} grades no case",
                f'name it in a case\'s [cases.expect] judge = {{provider = "{provider.name}", '
                'rubric = "..."}, or remove it',
            )


def check_case_providers(
    where: Where, prefix: str, case: CaseSpec, providers: Sequence[ProviderSpec]
) -> None:
    """A case's ``providers`` list names no judge: a judge is never sent the cases."""
    judges = {p.name for p in providers if p.role == "judge"}
    for index, name in enumerate(case.providers or ()):
        if name in judges:
            raise where.error(
                f"{prefix}.providers[{index}]",
                f"provider {name!r} is a judge: it is never sent the cases",
                "remove it from the case's providers (it grades through expect.judge)",
            )


def judged_cases(job: JobSpec) -> dict[str, JudgeExpectation]:
    """Case id -> its judge, for the cases of ``job`` that have one."""
    return {c.id: c.expect.judge for c in job.cases if c.expect is not None and c.expect.judge is not None}


def question_text(case: CaseSpec) -> str:
    """The case's request as the judge reads it: the system prompt and each message, role first."""
    parts = [f"[system] {case.system}"] if case.system else []
    for message in case.messages:
        parts.append(f"[{message.get('role', 'user')}] {_content_text(message.get('content'))}")
    if len(parts) == 1 and case.messages and case.messages[0].get("role") == "user":
        return _content_text(case.messages[0].get("content"))  # a plain prompt reads as itself
    return "\n".join(parts)


def answer_text(completion: Completion | None) -> str:
    """The unit's final answer as the judge reads it: the first choice's text, then its tool calls."""
    choice = completion.choices[0] if completion is not None and completion.choices else None
    if choice is None:
        return ""
    calls = [f"[tool call] {call.name}({call.arguments})" for call in choice.tool_calls]
    return "\n".join([choice.text, *calls]) if calls else choice.text


def grading_prompt(judge: JudgeExpectation, case: CaseSpec, *, answer: str) -> str:
    """The grading request's text for ``answer`` to ``case``.

    Raises:
        ConfigError: a template fails to compile or to render (``key`` is ``rubric`` or ``prompt``).
    """
    names: dict[str, Any] = dict(case.vars)
    names["rubric"] = _render("rubric", judge.rubric, names)
    names["question"] = question_text(case)
    names["answer"] = answer
    return _render("prompt", judge.prompt or DEFAULT_GRADING_PROMPT, names)


def _render(key: str, source: str, names: Mapping[str, Any]) -> str:
    # The template is the user's code run in the sandbox: whatever it raises is a mistake in the job.
    try:
        return str(compiled_template(source).render(names))
    except Exception as exc:
        known = ", ".join(sorted(names)) or "none"
        raise ConfigError(
            f"the judge's {key} template failed: {type(exc).__name__}: {exc}",
            key=key,
            fix=f"use only the names it gets ({known}), in valid Jinja2",
        ) from exc


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "")
            if isinstance(part, dict) and part.get("type") == "text"
            else json.dumps(part)
            for part in content
        )
    return json.dumps(content)
