"""The --dry-run plan (runner.job.preview): units per provider as planned, token and cost estimates."""

from __future__ import annotations

from runner.job.load import parse_job
from runner.job.plan import plan_units
from runner.job.preview import describe, input_tokens, preview, prompt_text
from tests.jobfile import provider_toml

API = "https://api.example.com/v1"
JOB = (
    'name = "p"\n[defaults]\nrepeats = 2\n'
    + provider_toml("capped", base_url=API, params={"max_tokens": 50}, price={"input": 2.0, "output": 8.0})
    + provider_toml("open", base_url=API, price={"input": 1.0, "output": 1.0})
    + provider_toml("unpriced", dialect="anthropic-messages", base_url="https://api.example.com")
    + """\
[[cases]]
id = "row"
prompt = "{{ w }}"
vars = [{w = "abcdefgh"}, {w = "abcdefghi"}, {w = "x"}, {w = "y"}]

[[cases]]
id = "only-capped"
system = "sys!"
prompt = "1234"
providers = ["capped"]
repeats = 3
"""
)


def test_units_per_provider_match_the_plan() -> None:
    """Each provider's unit count is what plan_units yields for it (subsets and repeats included)."""
    job = parse_job(JOB, path="job.toml")
    plan = preview(job)
    planned = {p.name: sum(u.provider == p.name for u in plan_units(job)) for p in job.providers}
    assert {p.name: p.units for p in plan.providers} == planned == {"capped": 11, "open": 8, "unpriced": 8}
    assert plan.units == 27
    assert plan.cases == 5


def test_tokens_and_cost_are_estimated_from_characters_and_caps() -> None:
    """Input ~ characters / 4 rounded up per request; output at the cap; no cap counts input only."""
    job = parse_job(JOB, path="job.toml")
    plans = {p.name: p for p in preview(job).providers}
    # rows: 8, 9, 1, 1 characters -> 2, 3, 1, 1 tokens, x 2 repeats; only-capped: 8 chars -> 2 x 3 repeats
    assert plans["open"].input_tokens == 14
    assert plans["capped"].input_tokens == 14 + 6
    assert plans["capped"].output_tokens == 11 * 50
    assert plans["capped"].cost_usd == (20 * 2.0 + 550 * 8.0) / 1e6
    assert plans["open"].output_tokens is None
    assert plans["open"].cost_usd == 14 / 1e6
    assert plans["unpriced"].output_tokens == 8 * 1024  # the Messages API's default cap
    assert plans["unpriced"].cost_usd is None


def test_tools_count_as_input() -> None:
    """A case's tools are sent with every request, so their JSON counts toward its input tokens."""
    text = JOB.replace(
        'prompt = "1234"', 'prompt = "1234"\ntools = [{type = "function", function = {name = "f"}}]'
    )
    job = parse_job(text, path="job.toml")
    case = job.cases[-1]
    assert input_tokens(case) == 2 + len('[{"type":"function","function":{"name":"f"}}]') // 4 + 1


def test_describe_names_what_is_not_counted_and_samples_across_the_job() -> None:
    """The printed plan notes unpriced and uncapped providers and samples cases from the whole job."""
    job = parse_job(JOB, path="job.toml")
    lines = describe(preview(job), "job.toml")
    text = "\n".join(lines)
    assert lines[0].startswith("dry run of job.toml (job 'p'): 5 cases, 27 units")
    assert "(not counted, no price: unpriced)" in text
    assert "no output cap, so input only: open" in text
    assert "sample prompts (3 of 5 cases):" in text
    samples = lines[lines.index("sample prompts (3 of 5 cases):") + 1 :]
    assert samples == [
        "  row/1: [user] abcdefgh",
        "  row/3: [user] x",
        "  only-capped: [system] sys! [user] 1234",
    ]


def test_prompt_text_is_one_line_and_cut() -> None:
    """A sample prompt is shown on one line and cut at the limit with an ellipsis."""
    job = parse_job(JOB.replace('prompt = "1234"', 'prompt = """a\nb"""'), path="job.toml")
    assert prompt_text(job.cases[-1]) == "[system] sys! [user] a b"
    assert prompt_text(job.cases[-1], limit=10) == "[system] …"
