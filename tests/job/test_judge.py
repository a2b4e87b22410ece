"""The judge in a job file: load checks (file, line, fix), plans without the judge, the grading prompt."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from runner.errors import ConfigError
from runner.job.judge import (
    DEFAULT_GRADING_PROMPT,
    answer_text,
    grading_prompt,
    judged_cases,
)
from runner.job.load import parse_job
from runner.job.plan import count_units, plan_units
from runner.job.preview import describe, preview
from runner.job.stored import job_from_json
from runner.job.subset import select_subset
from runner.job.template import compiled_template
from runner.model import Choice, Completion, ToolCall
from runner.spec import job_to_json

README = Path(__file__).parents[2] / "README.md"

JOB = """\
name = "judged"

[defaults]
repeats = 2

[[providers]]
name = "target"
dialect = "openai-chat"
model = "m"
simulator = {{}}

[[providers]]
name = "other"
dialect = "anthropic-messages"
model = "m"
simulator = {{}}

[[providers]]
name = "grader"
dialect = "openai-chat"
model = "judge-model"
{role}
simulator = {{ judge = {{ pass_when = "Paris" }} }}

[[cases]]
id = "capital"
prompt = "What is the capital of {{{{ country }}}}?"
vars = [{{ country = "France", city = "Paris" }}]
{providers}

[cases.expect]
judge = {judge}
"""
JUDGE = '{ provider = "grader", rubric = "The answer names {{ city }}.", threshold = 0.5 }'


def job_text(*, role: str = 'role = "judge"', judge: str = JUDGE, providers: str = "") -> str:
    """The job with the grader's role line, the case's judge table and its providers line as given."""
    return JOB.format(role=role, judge=judge, providers=providers)


def test_a_judge_is_never_planned_and_grades_every_target_unit() -> None:
    """The judge gets no unit of the job; the plan, its count and the dry run agree."""
    job = parse_job(job_text(), path="job.toml")
    units = list(plan_units(job))
    assert {u.provider for u in units} == {"target", "other"}
    assert len(units) == count_units(job) == 4
    plan = preview(job)
    assert (plan.units, plan.grading_requests) == (4, 4)
    (judge_line,) = [line for line in describe(plan, "job.toml") if line.startswith("grader (judge)")]
    assert judge_line.split()[2] == "4"
    assert "4 units (and 4 grading requests)" in describe(plan, "job.toml")[0]
    assert judged_cases(job)["capital/1"].threshold == 0.5


def test_a_subset_keeps_the_judge_and_the_stored_spec_reads_back() -> None:
    """--providers keeps judges (they grade the named providers' units); the spec round-trips."""
    job = parse_job(job_text(), path="job.toml")
    cut = select_subset(job, providers=["other"])
    assert [p.name for p in cut.providers] == ["other", "grader"]
    assert {u.provider for u in plan_units(cut)} == {"other"}
    assert job_from_json(job_to_json(job)) == job


@pytest.mark.parametrize(
    ("text", "key", "message", "fix"),
    [
        pytest.param(
            job_text(judge='{ provider = "nobody", rubric = "r" }'),
            "cases[0].expect.judge.provider",
            "no provider 'nobody'",
            'role = "judge"',
            id="unknown-provider",
        ),
        pytest.param(
            job_text(judge='{ provider = "target", rubric = "r" }'),
            "cases[0].expect.judge.provider",
            "is not a judge",
            'set role = "judge"',
            id="not-a-judge",
        ),
        pytest.param(
            job_text(role=""),
            "cases[0].expect.judge.provider",
            "is not a judge",
            'set role = "judge"',
            id="role-missing",
        ),
        pytest.param(
            job_text(role='role = "critic"'),
            "providers[2].role",
            "unknown role 'critic'",
            '"judge"',
            id="bad-role",
        ),
        pytest.param(
            job_text(judge='{ provider = "grader", rubric = "r", threshold = 1.5 }'),
            "cases[0].expect.judge.threshold",
            "invalid assertion",
            "0 to 1",
            id="threshold",
        ),
        pytest.param(
            job_text(judge='{ provider = "grader", rubric = "names {{ town }}" }'),
            "cases[0].expect.judge.rubric",
            "'town' is undefined",
            "country",
            id="rubric-undefined-var",
        ),
        pytest.param(
            job_text(judge='{ provider = "grader", rubric = "r", prompt = "{{ answer" }'),
            "cases[0].expect.judge.prompt",
            "template failed",
            "valid Jinja2",
            id="prompt-syntax",
        ),
        pytest.param(
            job_text(providers='providers = ["target", "grader"]'),
            "cases[0].providers[1]",
            "is a judge",
            "remove it",
            id="case-names-a-judge",
        ),
        pytest.param(
            job_text().replace("[cases.expect]\njudge = " + JUDGE, '[cases.expect]\ncontains = "x"'),
            "providers[2].role",
            "grades no case",
            "name it in a case",
            id="unused-judge",
        ),
    ],
)
def test_load_errors_name_the_key_line_and_fix(text: str, key: str, message: str, fix: str) -> None:
    """Every mistake with a judge is a load error naming the file, the key (with its line) and the fix."""
    with pytest.raises(ConfigError) as caught:
        parse_job(text, path="job.toml")
    error = caught.value
    assert (error.path, error.key) == ("job.toml", key)
    assert error.line is not None
    assert message in str(error.args[0])
    assert fix in (error.fix or "")


def test_the_grading_prompt_gets_rubric_question_answer_and_vars() -> None:
    """The default prompt renders the rubric (with the row's vars), the question and the answer."""
    job = parse_job(job_text(), path="job.toml")
    case = job.cases[0]
    judge = judged_cases(job)[case.id]
    text = grading_prompt(judge, case, answer="It is Paris.")
    assert "<question>\nWhat is the capital of France?\n</question>" in text
    assert "<answer>\nIt is Paris.\n</answer>" in text
    assert "<rubric>\nThe answer names Paris.\n</rubric>" in text
    assert '{"pass": true or false, "score": a number from 0 to 1, "reason": "one sentence"}' in text
    custom = parse_job(
        job_text(
            judge='{ provider = "grader", rubric = "R", prompt = "{{ country }}|{{ rubric }}|{{ answer }}" }'
        ),
        path="job.toml",
    )
    assert grading_prompt(judged_cases(custom)[case.id], case, answer="A") == "France|R|A"


def test_each_distinct_template_is_compiled_once_however_many_units_are_graded() -> None:
    """Every judged unit renders its grading request on the run's loop: compiling the rubric and the
    prompt again for each one held the loop 10-30 ms a unit. Each source compiles once; each render
    still gets its own answer and vars, and a broken template fails every time it is rendered."""
    job = parse_job(job_text(), path="job.toml")
    case = job.cases[0]
    judge = judged_cases(job)[case.id]
    compiled_template.cache_clear()
    texts = [grading_prompt(judge, case, answer=f"answer {n}") for n in range(50)]
    assert compiled_template.cache_info().misses == 2  # the rubric and the default prompt
    assert all(f"<answer>\nanswer {n}\n</answer>" in text for n, text in enumerate(texts))
    broken = dataclasses.replace(judge, rubric="{{ unclosed")
    for _ in range(2):
        with pytest.raises(ConfigError, match="rubric template failed"):
            grading_prompt(broken, case, answer="A")


def test_the_answer_shows_tool_calls() -> None:
    """The judge reads the final text, then each tool call with its arguments."""
    completion = Completion(
        choices=(
            Choice(
                index=0,
                text="Let me look.",
                tool_calls=(ToolCall(id="c1", name="search", arguments='{"q":"x"}'),),
            ),
        )
    )
    assert answer_text(completion) == 'Let me look.\n[tool call] search({"q":"x"})'
    assert answer_text(None) == ""


def test_the_readme_shows_the_default_grading_prompt_verbatim() -> None:
    """README's judge section holds DEFAULT_GRADING_PROMPT exactly, so the two cannot drift apart."""
    text = README.read_text()
    shown = re.search(r"<!-- default grading prompt -->\n```jinja\n(.*?)```", text, re.DOTALL)
    assert shown is not None, "README lost its default grading prompt block"
    assert shown.group(1) == DEFAULT_GRADING_PROMPT


def test_a_judge_need_not_express_the_cases_it_grades() -> None:
    """A case the judge's dialect could not send (openai-responses refuses `stop`) still loads."""
    text = job_text().replace(
        'model = "judge-model"\nrole = "judge"',
        'model = "judge-model"\nrole = "judge"\ndialect = "openai-responses"',
    )
    text = text.replace('name = "grader"\ndialect = "openai-chat"\n', 'name = "grader"\n')
    text = text.replace("vars = [", 'params = { stop = ["."] }\nvars = [')
    job = parse_job(text, path="job.toml")
    assert [p.dialect for p in job.providers if p.role == "judge"] == ["openai-responses"]
    # The same provider as a target would be sent the case: then the case is refused at load.
    with pytest.raises(ConfigError, match="provider 'grader'"):
        parse_job(text.replace('role = "judge"\n', ""), path="job.toml")
