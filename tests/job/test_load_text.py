"""Job file text: UTF-8 only (a BOM accepted), no silent YAML duplicates, no .json, no runaway plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import ConfigError
from runner.job.load import check_plan_size, load_job

TOML = """\
name = "café-nightly"
[[providers]]
name = "sim"
dialect = "openai-chat"
model = "m"
simulator = {}
[[cases]]
id = "c"
prompt = "hi"
"""

YAML = """\
name: café-nightly
providers:
  - name: sim
    dialect: openai-chat
    model: m
    simulator: {}
cases:
  - id: c
    prompt: hi
"""


@pytest.mark.parametrize(("suffix", "text"), [(".toml", TOML), (".yaml", YAML)])
def test_a_byte_order_mark_is_accepted(tmp_path: Path, suffix: str, text: str) -> None:
    """A UTF-8 BOM (Notepad writes one) is valid UTF-8 with a marker: the job loads as without it."""
    job = tmp_path / f"job{suffix}"
    job.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_job(job).name == "café-nightly"


@pytest.mark.parametrize(("suffix", "text"), [(".toml", TOML), (".yaml", YAML)])
def test_latin1_is_refused_with_its_line(tmp_path: Path, suffix: str, text: str) -> None:
    """A Latin-1 file fails naming the line of the first undecodable byte, instead of running mangled."""
    job = tmp_path / f"job{suffix}"
    job.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_job(job)
    assert caught.value.line == 1
    assert "not UTF-8: byte 0xe9" in str(caught.value)
    assert "save the file as UTF-8" in str(caught.value)


def test_a_latin1_cases_file_names_that_file(tmp_path: Path) -> None:
    """The cases_file is decoded the same way, and the error names it."""
    (tmp_path / "cases.jsonl").write_bytes(
        '{"id": "a", "prompt": "x"}\n{"id": "é", "prompt": "y"}\n'.encode("latin-1")
    )
    job = tmp_path / "job.toml"
    job.write_text('cases_file = "cases.jsonl"\n' + TOML.split("[[cases]]")[0])
    with pytest.raises(ConfigError) as caught:
        load_job(job)
    assert caught.value.path == str(tmp_path / "cases.jsonl")
    assert caught.value.line == 2


def test_yaml_duplicate_keys_are_refused(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys silently; the loader names the second one's line."""
    job = tmp_path / "job.yaml"
    job.write_text(YAML.replace("    model: m\n", "    model: m\n    model: other\n"))
    with pytest.raises(ConfigError) as caught:
        load_job(job)
    assert caught.value.key == "providers[0].model"
    assert caught.value.line == 6
    assert "first at line 5" in str(caught.value)


def test_a_json_job_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    """``.json`` used to be parsed as TOML; now it gets a message saying to rename it to .yaml."""
    job = tmp_path / "job.json"
    job.write_text('{"name": "x", "providers": [], "cases": []}')
    with pytest.raises(ConfigError) as caught:
        load_job(job)
    assert "rename the file to .yaml" in str(caught.value)
    assert caught.value.path == str(job)


def test_a_huge_plan_is_refused_at_its_repeats_line(tmp_path: Path) -> None:
    """``repeats = 10000000`` fails before any row is written, pointing at the line; a limit lifts it."""
    job = tmp_path / "job.toml"
    job.write_text(TOML.replace('prompt = "hi"', 'prompt = "hi"\nrepeats = 10000000'))
    spec = load_job(job)
    with pytest.raises(ConfigError) as caught:
        check_plan_size(spec, limit=100_000)
    assert caught.value.key == "cases[0].repeats"
    assert caught.value.line == 10
    assert "10,000,000 units" in str(caught.value)
    assert "--yes" in str(caught.value)
    assert check_plan_size(spec, limit=10_000_000) == 10_000_000
