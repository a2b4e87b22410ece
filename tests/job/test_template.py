"""Templated cases through the loader: one case per row in TOML, YAML and cases_file lines, rendered in
Jinja2's sandbox with StrictUndefined, and an error naming file, line and fix for every template problem."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.errors import ConfigError
from runner.job.load import check_plan_size, load_job, parse_job
from runner.job.plan import plan_units, request_hash
from runner.job.source import Where
from runner.job.stored import job_from_json
from runner.job.template import CaseTemplates, new_environment, template_strings
from runner.job.vars import inline_rows
from runner.spec import job_to_json
from tests.jobfile import write_job

PROVIDER = """\
name = "t"

[[providers]]
name = "p"
dialect = "openai-chat"
base_url = "https://api.example.com/v1"
model = "m"
"""

INLINE = (
    PROVIDER
    + """
[[cases]]
id = "cap"
system = "You answer about {{ country }}."
prompt = "Capital of {{ country }}? uid={{ uid }}"
vars = [{country = "France", uid = 3}, {id = "jp", country = "Japan", uid = 4.5}]

[cases.expect]
contains = ["{{ capital }}", "plain"]
tool_call = { name = "f", arguments = { type = "object", properties = { c = { enum = ["{{ country }}"] } } } }
"""
)


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_job(path)
    return info.value


def _line(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_inline_rows_expand_and_render() -> None:
    """Each inline row is a case ``<id>/<key>`` with prompt, system and expect rendered from its vars."""
    with pytest.raises(ConfigError, match="'capital' is undefined"):
        parse_job(INLINE, path="job.toml")
    job = parse_job(INLINE.replace("{{ capital }}", "{{ country }}"), path="job.toml")
    first, second = job.cases
    assert [first.id, second.id] == ["cap/1", "cap/jp"]
    assert first.messages == ({"role": "user", "content": "Capital of France? uid=3"},)
    assert second.messages[0]["content"] == "Capital of Japan? uid=4.5"  # numbers render as numbers
    assert first.system == "You answer about France."
    assert first.vars == {"country": "France", "uid": 3}
    assert second.vars == {"id": "jp", "country": "Japan", "uid": 4.5}
    assert second.expect is not None
    assert second.expect.contains == ("Japan", "plain")
    assert second.expect.tool_call is not None
    assert second.expect.tool_call.arguments == {"type": "object", "properties": {"c": {"enum": ["Japan"]}}}


def test_a_case_without_rows_is_not_templated() -> None:
    """A literal ``{{`` (or a broken tag) in a case without vars is sent exactly as written."""
    text = PROVIDER + '\n[[cases]]\nid = "lit"\nprompt = "keep {{ this }} and {% broken"\n'
    job = parse_job(text, path="job.toml")
    assert job.cases[0].messages[0]["content"] == "keep {{ this }} and {% broken"
    assert job.cases[0].vars == {}


def test_message_contents_and_text_parts_render(tmp_path: Path) -> None:
    """String contents and text parts of messages render; image URLs and tools are sent as written."""
    (tmp_path / "rows.csv").write_text("id,word,n\nparis,bonjour,3\n,hello,4\n")
    text = PROVIDER + textwrap.dedent("""
        [[cases]]
        id = "csv"
        vars_file = "rows.csv"
        tools = [{type = "function", function = {name = "{{ word }}", parameters = {type = "object"}}}]
        messages = [
          {role = "system", content = "Say {{ word }}."},
          {role = "user", content = [
            {type = "text", text = "n={{ n }}"},
            {type = "image_url", image_url = {url = "https://x.test/{{ n }}.png"}},
          ]},
        ]
        """)
    job = load_job(write_job(tmp_path, text))
    assert [c.id for c in job.cases] == ["csv/paris", "csv/2"]
    case = job.cases[1]
    assert case.system == "Say hello."
    assert case.messages[0]["content"][0] == {"type": "text", "text": "n=4"}  # a CSV value is a string
    assert case.messages[0]["content"][1]["image_url"]["url"] == "https://x.test/{{ n }}.png"
    assert case.tools[0]["function"]["name"] == "{{ word }}"
    assert case.vars == {"id": "", "word": "hello", "n": "4"}


def test_yaml_and_a_cases_file_expand_too(tmp_path: Path) -> None:
    """YAML cases and cases_file lines take vars and vars_file (relative to the job file) alike."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.jsonl").write_text('{"n": 2}\n{"id": "big", "n": 40}\n')
    (tmp_path / "cases.jsonl").write_text(
        '{"id": "line", "prompt": "{{ n + 1 }}", "vars_file": "data/rows.jsonl"}\n'
    )
    text = """\
        cases_file: cases.jsonl
        providers:
          - {name: p, dialect: openai-chat, base_url: "https://api.example.com/v1", model: m}
        cases:
          - id: y
            prompt: "Hi {{ who }}"
            vars:
              - {who: Ann}
              - {who: Bo}
        """
    job = load_job(write_job(tmp_path, text, "job.yaml"))
    assert [(c.id, c.messages[0]["content"]) for c in job.cases] == [
        ("y/1", "Hi Ann"),
        ("y/2", "Hi Bo"),
        ("line/1", "3"),  # a JSON Lines value keeps its type: n + 1 is arithmetic
        ("line/big", "41"),
    ]


def test_judge_rubric_and_prompt_are_left_for_the_judge() -> None:
    """The judge's rubric and prompt stay unrendered (the judge renders them with the answer)."""
    table = {
        "prompt": "{{ q }}",
        "expect": {"judge": {"provider": "{{ j }}", "rubric": "{{ answer }}", "prompt": "{{ rubric }}"}},
    }
    keys = [key for key, _ in template_strings(table, "cases[0]")]
    assert keys == ["cases[0].prompt", "cases[0].expect.judge.provider"]
    where = Where(path="job.toml", locations={})
    row = inline_rows(where, [{"q": "why", "j": "judge"}], "cases[0].vars")[0]
    rendered = CaseTemplates.compile(new_environment(), where, table, "cases[0]").render(table, row)
    assert rendered["expect"]["judge"] == {
        "provider": "judge",
        "rubric": "{{ answer }}",
        "prompt": "{{ rubric }}",
    }
    assert table["prompt"] == "{{ q }}"  # the table itself is not changed


def test_expanded_job_round_trips_through_the_stored_spec(tmp_path: Path) -> None:
    """A run's stored spec reads back the rendered cases and their vars, so --resume sends the same."""
    job = parse_job(INLINE.replace("{{ capital }}", "{{ country }}"), path="job.toml")
    stored = job_from_json(json.loads(json.dumps(job_to_json(job))))
    assert stored == job
    assert [u.request_hash for u in plan_units(stored)] == [u.request_hash for u in plan_units(job)]
    assert stored.cases[1].expect is not None
    assert stored.cases[1].expect.contains == ("Japan", "plain")


def test_units_and_the_plan_size_count_every_row() -> None:
    """Each row is a case of its own: units, request hashes and the --yes limit count rows."""
    job = parse_job(INLINE.replace("{{ capital }}", "{{ country }}"), path="job.toml")
    units = list(plan_units(job))
    assert [u.key for u in units] == ["p/cap/1/1", "p/cap/jp/1"]
    assert units[0].request_hash == request_hash(job.providers[0], job.cases[0])
    assert units[0].request_hash != units[1].request_hash
    assert check_plan_size(job, limit=2) == 2
    with pytest.raises(ConfigError, match="plans 2 units"):
        check_plan_size(job, limit=1)


def test_vars_file_feeds_the_job_digest(tmp_path: Path) -> None:
    """A vars file's bytes are part of source_sha256: new rows are a different job."""
    (tmp_path / "rows.csv").write_text("w\nx\n")
    text = PROVIDER + '\n[[cases]]\nid = "c"\nprompt = "{{ w }}"\nvars_file = "rows.csv"\n'
    path = write_job(tmp_path, text)
    job = load_job(path)
    assert job.source_sha256 == hashlib.sha256(path.read_bytes() + b"w\nx\n").hexdigest()
    (tmp_path / "rows.csv").write_text("w\ny\n")
    assert load_job(path).source_sha256 != job.source_sha256


@pytest.mark.parametrize(
    ("case", "rows", "at_vars_file", "needle", "message", "fix"),
    [
        pytest.param(
            'prompt = "Hi {{ name }}"',
            "id,nmae\na,Ann\nb,Bo\n",
            True,
            None,
            "row 1: template cases[0].prompt (JOB:PROMPT): 'name' is undefined (the row has: id, nmae)",
            "add a 'name' column (or field) to ROWS",
            id="missing-column",
        ),
        pytest.param(
            'prompt = "Hi {{ name }}"',
            '{"name": "Ann"}\n\n{"nom": "Bo"}\n',
            True,
            None,
            "row 2: template cases[0].prompt",
            "add a 'name' column",
            id="row-lacks-a-field",
        ),
        pytest.param(
            'prompt = "Hi {{ name }"',
            "name\nAnn\n",
            False,
            "prompt =",
            "template syntax error: unexpected '}'",
            "correct the Jinja2 syntax",
            id="syntax",
        ),
        pytest.param(
            "prompt = \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"",
            "name\nAnn\n",
            True,
            None,
            "SecurityError",
            "correct the template",
            id="sandbox",
        ),
        pytest.param(
            'prompt = "{{ name + 1 }}"',
            "name\nAnn\n",
            True,
            None,
            "TypeError",
            "correct the template",
            id="type-error",
        ),
        pytest.param(
            'prompt = "Hi"\n[cases.expect]\nequals = "{{ name.first }}"',
            "name\nAnn\n",
            True,
            None,
            "template cases[0].expect.equals",
            "give the row that value",
            id="expect-attribute",
        ),
        pytest.param(
            'prompt = "{{ name }}"',
            "id,name\nx,Ann\nx,Bo\n",
            True,
            None,
            "row 2: the case id c/x is taken by row 1",
            "unique id",
            id="duplicate-row-id",
        ),
    ],
)
def test_template_errors_name_file_line_and_fix(
    tmp_path: Path,
    case: str,
    rows: str,
    at_vars_file: bool,
    needle: str | None,
    message: str,
    fix: str,
) -> None:
    """Each template or row problem is a ConfigError at the row's line (or the template's job line)."""
    name = "rows.jsonl" if rows.startswith("{") else "rows.csv"
    rows_path = tmp_path / name
    rows_path.write_text(rows)
    text = PROVIDER + f'\n[[cases]]\nid = "c"\nvars_file = "{name}"\n{case}\n'
    path = write_job(tmp_path, text)
    err = _error(path)
    if at_vars_file:
        assert err.path == str(rows_path)
        assert err.line is not None
        bad_row = 3 if "row 2" in message else 2
        assert err.line == bad_row
    else:
        assert needle is not None
        assert (err.path, err.line, err.key) == (str(path), _line(text, needle), "cases[0].prompt")
    expected = message.replace("JOB", str(path)).replace("PROMPT", str(_line(text, "prompt =")))
    assert expected in str(err)
    assert err.fix is not None
    assert fix.replace("ROWS", str(rows_path)) in err.fix


def test_inline_row_error_points_at_the_row_in_the_job(tmp_path: Path) -> None:
    """An inline row lacking a var is named by its key and line in the job file ([[cases.vars]] tables)."""
    text = PROVIDER + textwrap.dedent("""
        [[cases]]
        id = "c"
        prompt = "{{ a }} {{ b }}"

        [[cases.vars]]
        a = 1
        b = 2

        [[cases.vars]]
        a = 3
        """)
    path = write_job(tmp_path, text)
    err = _error(path)
    assert (err.path, err.line) == (str(path), _line(text, "a = 3") - 1)
    assert "cases[0].vars[1]: template cases[0].prompt" in str(err)
    assert err.fix is not None
    assert "add b to every row of vars" in err.fix


def test_an_expanded_id_may_not_take_another_cases_id() -> None:
    """Rows may not make an id another case already has: the job's duplicate check sees expanded ids."""
    text = INLINE.replace("{{ capital }}", "{{ country }}") + '\n[[cases]]\nid = "cap/jp"\nprompt = "x"\n'
    with pytest.raises(ConfigError, match="duplicate case id 'cap/jp'"):
        parse_job(text, path="job.toml")


def test_vars_file_not_utf8_names_its_line(tmp_path: Path) -> None:
    """A vars file that is not UTF-8 fails at its own line, as a job file does."""
    (tmp_path / "rows.csv").write_bytes(b"w\ncaf\xe9\n")
    text = PROVIDER + '\n[[cases]]\nid = "c"\nprompt = "{{ w }}"\nvars_file = "rows.csv"\n'
    err = _error(write_job(tmp_path, text))
    assert (err.path, err.line) == (str(tmp_path / "rows.csv"), 2)
    assert "not UTF-8" in str(err)


def test_rendered_case_is_checked_like_any_case() -> None:
    """The rendered rows go through the same checks (dialects included) as a written case."""
    text = PROVIDER.replace("openai-chat", "runware") + textwrap.dedent("""
        [[cases]]
        id = "c"
        vars = [{u = "https://x.test/a.png"}]
        messages = [{role = "user", content = [{type = "image_url", image_url = {url = "{{ u }}"}}]}]
        """)
    with pytest.raises(ConfigError) as info:
        parse_job(text, path="job.toml")
    assert info.value.key is not None
    assert info.value.key.startswith("cases[0].messages[0]")
    assert "runware cannot express" in str(info.value)


_ROW_IDS = st.one_of(st.none(), st.sampled_from(["", " "]), st.text(max_size=6), st.integers(-5, 30))


@given(ids=st.lists(_ROW_IDS, min_size=1, max_size=12))
def test_expanded_ids_are_the_row_keys_or_a_load_error(ids: list[object]) -> None:
    """Property: a vars file's rows give ids ``c/<id or number>`` in row order, or, when two rows would
    share an id, a load error at the second one's line; never two cases with one id."""
    lines = [json.dumps({"w": n} if ident is None else {"id": ident, "w": n}) for n, ident in enumerate(ids)]
    text = PROVIDER + '\n[[cases]]\nid = "c"\nprompt = "{{ w }}"\nvars_file = "rows.jsonl"\n'
    keys = [str(n) if i is None or not str(i).strip() else str(i) for n, i in enumerate(ids, start=1)]
    files = {"rows.jsonl": "\n".join(lines)}
    if len(set(keys)) < len(keys):
        second = next(n for n, key in enumerate(keys) if key in keys[:n])
        with pytest.raises(ConfigError, match="is taken by row") as info:
            parse_job(text, path="job.toml", vars_files=files)
        assert (info.value.path, info.value.line) == ("rows.jsonl", second + 1)
        return
    job = parse_job(text, path="job.toml", vars_files=files)
    assert [case.id for case in job.cases] == [f"c/{key}" for key in keys]
    assert [case.messages[0]["content"] for case in job.cases] == [str(n) for n in range(len(ids))]
