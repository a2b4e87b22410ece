"""Job file loading (TOML, YAML, batch JSONL, cases files); every error names file, line, key and fix."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.errors import ConfigError
from runner.job.load import check_environment, load_batch_jsonl, load_job, parse_job
from runner.job.provider import build_retry, build_timeouts, parse_provider_option
from runner.job.source import Where
from runner.simulator.config import Dist, Fault, FaultPlan, Latency, SimulatorConfig
from runner.spec import DEFAULT_MAX_RESPONSE_BYTES, SIMULATOR_BASE_URL, ProviderSpec, RetryPolicy, Timeouts
from runner.wire.dialects import names as dialect_names
from tests.jobfile import write_job

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jobs"

BASE = """\
name = "t"

[[providers]]
name = "p1"
dialect = "openai-chat"
base_url = "https://api.example.com/v1"
model = "m"
api_key_env = "P1_KEY"

[[providers]]
name = "p2"
dialect = "openai-chat"
base_url = "https://api.example.com/v1"
model = "m"

[[cases]]
id = "c1"
prompt = "hi"

[[cases]]
id = "c2"
prompt = "ho"
"""

P2_URL = 'name = "p2"\ndialect = "openai-chat"\nbase_url = "https://api.example.com/v1"'
BATCH_PROVIDER = ProviderSpec(
    name="p", dialect="openai-chat", base_url="https://api.example.com/v1", model=""
)


def _line(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the nth line containing ``needle``."""
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[nth - 1]


def _load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_job(path)
    return info.value


def _assert_names(err: ConfigError, path: Path, line: int | None, key: str | None, fix: str) -> None:
    assert err.path == str(path)
    assert err.line == line
    assert err.key == key
    assert err.fix is not None
    assert fix in err.fix
    message = str(err)
    assert str(path) in message
    if line is not None:
        assert f"{path}:{line}" in message
    if key is not None:
        assert key in message
    assert fix in message


TOML_ERRORS = [
    pytest.param(("name = ", "nmae = "), "nmae", "nmae", "did you mean 'name'", id="unknown-top-key"),
    pytest.param(
        ('base_url = "https://api.example.com/v1"\nmodel', 'base_ulr = "https://x.test"\nmodel'),
        "base_ulr",
        "providers[0].base_ulr",
        "did you mean 'base_url'",
        id="unknown-provider-key",
    ),
    pytest.param(
        ('api_key_env = "P1_KEY"', 'api_key_env = "P1_KEY"\nconcurrency = "16"'),
        "concurrency",
        "providers[0].concurrency",
        "make it an integer",
        id="wrong-type",
    ),
    pytest.param(
        ('name = "p2"', 'name = "p1"'), 'name = "p1"#2', "providers[1].name", "unique", id="dup-provider"
    ),
    pytest.param(('id = "c2"', 'id = "c1"'), 'id = "c1"#2', "cases[1].id", "unique", id="dup-case"),
    pytest.param(
        ('prompt = "ho"', 'prompt = "ho"\nproviders = ["p3"]'),
        "providers = [",
        "cases[1].providers[0]",
        "use one of p1, p2",
        id="unknown-case-provider",
    ),
    pytest.param(
        ('dialect = "openai-chat"', 'dialect = "openai-chta"'),
        "openai-chta",
        "providers[0].dialect",
        "did you mean 'openai-chat'",
        id="unknown-dialect",
    ),
    pytest.param(
        ('base_url = "https://api.example.com/v1"', 'base_url = "http://api.example.com/v1"'),
        "http://api",
        "providers[0].base_url",
        "allow_insecure = true",
        id="http-not-loopback",
    ),
    pytest.param(
        ('base_url = "https://api.example.com/v1"', 'base_url = "https://u:secret@api.example.com/v1"'),
        "secret@",
        "providers[0].base_url",
        "api_key_env",
        id="credentials-in-url",
    ),
    pytest.param(
        ('prompt = "ho"', 'prompt = "ho"\nmessages = [{ role = "user", content = "x" }]'),
        "[[cases]]#2",
        "cases[1]",
        "not both",
        id="prompt-and-messages",
    ),
    pytest.param(
        ('prompt = "ho"', 'system = "s"'), "[[cases]]#2", "cases[1]", "prompt or messages", id="neither"
    ),
    pytest.param(
        ('prompt = "ho"', 'prompt = "ho"\n[cases.expect]\ncontain = "x"'),
        "contain =",
        "cases[1].expect.contain",
        "did you mean 'contains'",
        id="expect-unknown-key",
    ),
    pytest.param(
        ('prompt = "ho"', "prompt = \"ho\"\n[cases.expect]\nregex = '(unclosed'"),
        "regex",
        "cases[1].expect.regex",
        "fix the pattern",
        id="expect-bad-regex",
    ),
    pytest.param(
        ('prompt = "ho"', 'prompt = "ho"\n[cases.expect]\nfinish_reason = "stopped"'),
        "finish_reason",
        "cases[1].expect.finish_reason",
        "stop",
        id="expect-finish-reason",
    ),
    pytest.param(
        (
            'prompt = "ho"',
            'prompt = "ho"\n[cases.expect]\ntool_call = { name = 3, arguments = { type = "object" } }',
        ),
        "tool_call",
        "cases[1].expect.tool_call.name",
        "non-empty string",
        id="expect-tool-call-name",
    ),
    pytest.param(
        (
            'prompt = "ho"',
            'prompt = "ho"\n[cases.expect]\ntool_call = { name = "f", arguments = { type = "strng" } }',
        ),
        "tool_call",
        "cases[1].expect.tool_call.arguments.type",
        "string",
        id="expect-schema-type",
    ),
    pytest.param(
        ('prompt = "ho"', 'prompt = "ho"\n[cases.expect]\nmax_ttft_s = -1'),
        "max_ttft_s",
        "cases[1].expect.max_ttft_s",
        "more than 0",
        id="expect-negative",
    ),
    pytest.param(
        ('model = "m"\napi_key_env', 'model = "m"\nheaders = { Authorization = "Bearer x" }\napi_key_env'),
        "headers",
        "providers[0].headers.Authorization",
        "api_key_env",
        id="secret-header",
    ),
    pytest.param(
        ('api_key_env = "P1_KEY"', 'api_key_env = "P1_KEY"\n[providers.retry]\nmax_attempts = 0'),
        "max_attempts",
        "providers[0].retry.max_attempts",
        "more than 0",
        id="retry-zero-attempts",
    ),
    pytest.param(
        ('api_key_env = "P1_KEY"', 'api_key_env = "P1_KEY"\nsimulator = { latency = "fast" }'),
        "base_url",
        "providers[0].base_url",
        "remove base_url",
        id="simulator-with-real-url",
    ),
    pytest.param(
        (P2_URL, 'name = "p2"\ndialect = "openai-chat"\nsimulator = { latency = "fast" }'),
        "simulator =",
        "providers[1].simulator.latency",
        "KEY=VALUE",
        id="simulator-bad-latency",
    ),
    pytest.param(
        (P2_URL, 'name = "p2"\ndialect = "openai-chat"\nsimulator = { seed = 1, fault_rate = 0.03 }'),
        "fault_rate",
        "providers[1].simulator.fault_rate",
        "use one of seed",
        id="simulator-unknown-key",
    ),
    pytest.param(
        ('name = "p2"', 'name = "a/b"'),
        'name = "a/b"',
        "providers[1].name",
        "drop the '/'",
        id="slash-in-name",
    ),
    pytest.param(
        ('name = "p1"\n', 'name = "p1"\nprice = { input = 1 }\n'),
        "price",
        "providers[0].price.output",
        "input and output",
        id="price-missing-output",
    ),
    pytest.param(
        ('name = "p1"\n', 'name = "p1"\nmax_response_bytes = 0\n'),
        "max_response_bytes",
        "providers[0].max_response_bytes",
        "more than 0",
        id="max-response-bytes-zero",
    ),
    pytest.param(
        ('name = "p1"\n', 'name = "p1"\ntransport = "aiohttp"\n'),
        "transport",
        "providers[0].transport",
        '"httpx"',
        id="unknown-transport",
    ),
]


@pytest.mark.parametrize(("edit", "needle", "key", "fix"), TOML_ERRORS)
def test_toml_error_names_file_line_key_and_fix(
    tmp_path: Path, edit: tuple[str, str], needle: str, key: str, fix: str
) -> None:
    """Each invalid TOML job fails at load with a ConfigError naming the file, line, dotted key and a fix."""
    old, new = edit
    assert old in BASE
    text = BASE.replace(old, new, 1)
    needle, _, nth = needle.partition("#")
    path = write_job(tmp_path, text)
    err = _load_error(path)
    _assert_names(err, path, _line(text, needle, int(nth or 1)), key, fix)


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    """A TOML syntax error reports the line tomllib found it on."""
    text = 'name = "t"\n[[providers]\nname = "p"\n'
    path = write_job(tmp_path, text)
    err = _load_error(path)
    _assert_names(err, path, 2, None, "TOML syntax")


YAML_BASE = """\
name: t
providers:
  - name: p1
    dialect: openai-chat
    base_url: https://api.example.com/v1
    model: m
cases:
  - id: c1
    prompt: hi
"""

YAML_ERRORS = [
    pytest.param(
        ("model: m", "model: m\n    concurency: 4"),
        "concurency",
        "providers[0].concurency",
        "concurrency",
        id="unknown",
    ),
    pytest.param(
        ("model: m", "model: m\n    rpm: fast"), "rpm", "providers[0].rpm", "a number", id="wrong-type"
    ),
    pytest.param(
        ("prompt: hi", "prompt: hi\n    providers: [nope]"),
        "providers: [nope]",
        "cases[0].providers[0]",
        "p1",
        id="case-provider",
    ),
    pytest.param(
        ("prompt: hi", "prompt: hi\n    expect: {json_valid: yes-please}"),
        "expect",
        "cases[0].expect.json_valid",
        "true or false",
        id="expect-type",
    ),
    pytest.param(
        ("prompt: hi", "prompt: hi\n    tools: [{type: function}]"),
        "tools",
        "cases[0].tools[0]",
        'type = "function"',
        id="tool-format",
    ),
    pytest.param(
        ("prompt: hi\n", "prompt: hi\n  - id: c1\n    prompt: again\n"),
        "- id: c1#2",
        "cases[1].id",
        "unique",
        id="dup-case",
    ),
]


@pytest.mark.parametrize(("edit", "needle", "key", "fix"), YAML_ERRORS)
def test_yaml_error_names_file_line_key_and_fix(
    tmp_path: Path, edit: tuple[str, str], needle: str, key: str, fix: str
) -> None:
    """Each invalid YAML job names the line of the offending key, found from the YAML node marks."""
    old, new = edit
    assert old in YAML_BASE
    text = YAML_BASE.replace(old, new, 1)
    needle, _, nth = needle.partition("#")
    path = write_job(tmp_path, text, "job.yaml")
    err = _load_error(path)
    _assert_names(err, path, _line(text, needle, int(nth or 1)), key, fix)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    """A YAML syntax error reports the line of the problem."""
    text = "name: t\nproviders: [\n  - a\n"
    path = write_job(tmp_path, text, "job.yml")
    err = _load_error(path)
    assert err.path == str(path)
    assert err.line is not None
    assert "YAML syntax" in (err.fix or "")


def test_missing_env_var_is_named_with_its_line(tmp_path: Path) -> None:
    """check_environment names the variable, the provider's api_key_env line and how to fix it."""
    path = write_job(tmp_path, BASE)
    job = load_job(path)
    with pytest.raises(ConfigError) as info:
        check_environment(job, {"OTHER": "x"})
    _assert_names(info.value, path, _line(BASE, "P1_KEY"), "providers[0].api_key_env", "export P1_KEY")
    assert "P1_KEY" in str(info.value)


def test_env_check_passes_and_never_stores_the_key(tmp_path: Path) -> None:
    """With the variable set the check passes, and the key's value appears nowhere in the spec."""
    job = load_job(write_job(tmp_path, BASE))
    check_environment(job, {"P1_KEY": "sk-very-secret"})
    assert "sk-very-secret" not in repr(job)


def test_empty_env_var_counts_as_missing(tmp_path: Path) -> None:
    """An empty variable is as useless as a missing one."""
    job = load_job(write_job(tmp_path, BASE))
    with pytest.raises(ConfigError, match="P1_KEY"):
        check_environment(job, {"P1_KEY": ""})


@pytest.mark.parametrize(
    ("url", "insecure"),
    [
        pytest.param("http://127.0.0.1:8000/v1", False, id="ipv4-loopback"),
        pytest.param("http://[::1]:8000/v1", False, id="ipv6-loopback"),
        pytest.param("http://localhost:8000", False, id="localhost"),
        pytest.param("http://10.0.0.5:8000", True, id="allow-insecure"),
    ],
)
def test_plain_http_allowed_for_loopback_or_opt_in(tmp_path: Path, url: str, insecure: bool) -> None:
    """Plain http:// loads for loopback hosts, and for any host with allow_insecure."""
    text = BASE.replace('base_url = "https://api.example.com/v1"', f'base_url = "{url}"', 1)
    if insecure:
        text = text.replace('api_key_env = "P1_KEY"', 'api_key_env = "P1_KEY"\nallow_insecure = true')
    job = load_job(write_job(tmp_path, text))
    assert job.providers[0].base_url == url


def test_toml_and_yaml_load_to_the_same_spec() -> None:
    """The same job written in TOML and YAML loads to equal specs (only source fields differ)."""
    toml_job = load_job(FIXTURES / "equivalent.toml")
    yaml_job = load_job(FIXTURES / "equivalent.yaml")
    assert toml_job.providers == yaml_job.providers
    assert toml_job.cases == yaml_job.cases
    assert toml_job.repeats == yaml_job.repeats == 2


def test_params_and_policies_merge_defaults_then_provider() -> None:
    """defaults.params merge deeply under provider params; retry tables override key by key."""
    job = load_job(FIXTURES / "equivalent.toml")
    first, second = job.providers
    assert first.params == {
        "temperature": 0.5,
        "stream_options": {"include_usage": True, "include_obfuscation": False},
    }
    assert second.params == {"temperature": 0, "stream_options": {"include_usage": True}}
    assert first.retry == RetryPolicy(max_attempts=3, backoff_max=5.0)
    assert second.retry == RetryPolicy(max_attempts=3)


def test_prompt_becomes_a_user_message_and_system_is_lifted() -> None:
    """A prompt is one user message; a leading system message moves to ``system``."""
    job = load_job(FIXTURES / "equivalent.toml")
    one, two = job.cases
    assert one.messages == ({"role": "user", "content": "hi"},)
    assert two.system == "be brief"
    assert two.messages == ({"role": "user", "content": "hello"},)
    assert two.providers == ("b",)


def test_source_sha256_is_the_file_digest() -> None:
    """source_sha256 is the sha256 of the job file's bytes (no cases_file)."""
    path = FIXTURES / "equivalent.toml"
    job = load_job(path)
    assert job.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert job.source_path == str(path)


def test_simulator_provider_convention(tmp_path: Path) -> None:
    """A provider with a simulator table and no base_url gets sim:// and needs no key."""
    text = """\
    [[providers]]
    name = "sim"
    dialect = "runware"
    model = "m"
    simulator = { latency = "ttft=0.2", faults = "http_500@0.03" }

    [[providers]]
    name = "sim2"
    dialect = "anthropic-messages"
    model = "m"
    base_url = "sim://"

    [[cases]]
    id = "c"
    prompt = "hi"
    """
    job = load_job(write_job(tmp_path, text))
    sim, sim2 = job.providers
    assert sim.base_url == sim2.base_url == SIMULATOR_BASE_URL
    assert sim.simulator == SimulatorConfig(
        latency=Latency(ttft=Dist(a=0.2)), faults=FaultPlan(rates=((Fault(name="http_500"), 0.03),))
    )
    assert sim2.simulator == SimulatorConfig()
    assert sim.is_simulated
    assert sim2.is_simulated
    check_environment(job, {})
    assert job.name == "job"


def test_provider_option_simulator_is_a_default_simulator() -> None:
    """--provider simulator gives a simulated openai-chat provider with the default simulator config."""
    provider = parse_provider_option("simulator")
    assert provider.simulator == SimulatorConfig()
    assert provider.base_url == SIMULATOR_BASE_URL


def test_max_response_bytes_is_a_provider_key(tmp_path: Path) -> None:
    """max_response_bytes sets the provider's body bound; without it the 64 MiB default applies."""
    text = BASE.replace('name = "p1"\n', 'name = "p1"\nmax_response_bytes = 1048576\n', 1)
    job = load_job(write_job(tmp_path, text))
    assert [p.max_response_bytes for p in job.providers] == [1 << 20, DEFAULT_MAX_RESPONSE_BYTES]
    assert DEFAULT_MAX_RESPONSE_BYTES == 64 * 1024 * 1024


def test_transport_is_a_provider_key(tmp_path: Path) -> None:
    """transport = "httpx" puts stock httpx under one provider; runner's own transport is the default."""
    text = BASE.replace('name = "p1"\n', 'name = "p1"\ntransport = "httpx"\n', 1)
    job = load_job(write_job(tmp_path, text))
    assert [p.transport for p in job.providers] == ["httpx", "runner"]


def test_token_idle_is_off_unless_a_timeouts_table_sets_it() -> None:
    """timeouts.token_idle is None by default, a float when set, and must be more than 0."""
    where = Where(path="job.toml", locations={})
    assert Timeouts().token_idle is None
    assert build_timeouts(where, {"token_idle": 30}, "timeouts", Timeouts()).token_idle == 30.0
    with pytest.raises(ConfigError, match="more than 0"):
        build_timeouts(where, {"token_idle": 0}, "timeouts", Timeouts())


def test_retry_table_sets_every_policy_field() -> None:
    """Every RetryPolicy field can be set in a retry table; max_attempts stays an int, the rest are floats."""
    where = Where(path="job.toml", locations={})
    table = {"max_attempts": 3, "backoff_initial": 1, "backoff_max": 2, "retry_after_max": 3}
    assert set(table) == {f.name for f in dataclasses.fields(RetryPolicy)}
    policy = build_retry(where, table, "retry", RetryPolicy())
    assert policy == RetryPolicy(max_attempts=3, backoff_initial=1.0, backoff_max=2.0, retry_after_max=3.0)
    assert isinstance(policy.backoff_initial, float)
    with pytest.raises(ConfigError, match="an integer"):
        build_retry(where, {"max_attempts": 1.5}, "retry", RetryPolicy())


def test_cases_file_is_relative_to_the_job(tmp_path: Path) -> None:
    """cases_file lines become cases after the inline ones, and both files feed source_sha256."""
    (tmp_path / "sub").mkdir()
    cases = '{"id": "x", "prompt": "a"}\n\n{"id": "y", "messages": [{"role": "user", "content": "b"}]}\n'
    (tmp_path / "sub" / "cases.jsonl").write_text(cases)
    text = BASE.replace('name = "t"', 'name = "t"\ncases_file = "sub/cases.jsonl"')
    path = write_job(tmp_path, text)
    job = load_job(path)
    assert [case.id for case in job.cases] == ["c1", "c2", "x", "y"]
    digest = hashlib.sha256(path.read_bytes() + cases.encode()).hexdigest()
    assert job.source_sha256 == digest


@pytest.mark.parametrize(
    ("lines", "line", "key", "fix"),
    [
        pytest.param(
            '{"id": "x", "prompt": "a"}\n{"id": "x", "prompt": "b"}\n', 2, "cases[3].id", "unique", id="dup"
        ),
        pytest.param(
            '{"id": "x", "prompt": "a"}\n\n{not json\n', 3, "cases[3]", "one JSON object", id="json"
        ),
        pytest.param(
            '{"id": "x", "promt": "a"}\n', 1, "cases[2].promt", "did you mean 'prompt'", id="unknown-key"
        ),
    ],
)
def test_cases_file_errors_name_the_cases_file_line(
    tmp_path: Path, lines: str, line: int, key: str, fix: str
) -> None:
    """An error in a cases_file names that file and its line, not the job file."""
    cases_path = tmp_path / "cases.jsonl"
    cases_path.write_text(lines)
    path = write_job(tmp_path, BASE.replace('name = "t"', 'name = "t"\ncases_file = "cases.jsonl"'))
    err = _load_error(path)
    _assert_names(err, cases_path, line, key, fix)


def test_missing_cases_file_names_the_job_line(tmp_path: Path) -> None:
    """A cases_file that cannot be read is reported at the job file's cases_file line."""
    text = BASE.replace('name = "t"', 'name = "t"\ncases_file = "nope.jsonl"')
    path = write_job(tmp_path, text)
    err = _load_error(path)
    _assert_names(err, path, 2, "cases_file", "relative to the job file")


def test_no_providers_and_no_cases_fail(tmp_path: Path) -> None:
    """A job without providers, or without cases, fails with a fix."""
    err = _load_error(write_job(tmp_path, 'name = "x"\n'))
    assert err.key == "providers"
    assert "[[providers]]" in (err.fix or "")
    no_cases = BASE.split("[[cases]]")[0]
    err = _load_error(write_job(tmp_path, no_cases))
    assert "[[cases]]" in (err.fix or "")


def test_batch_jsonl_lines_become_cases() -> None:
    """Each batch line is a case: custom_id, messages (system lifted), tools and the rest as params."""
    job = load_batch_jsonl(ROOT / "jobs" / "batch.jsonl", provider=BATCH_PROVIDER)
    assert [case.id for case in job.cases] == ["request-1", "request-2", "request-3"]
    first, second, third = job.cases
    assert first.system == "You are a helpful assistant."
    assert first.params == {"max_tokens": 1000}
    assert second.params == {"temperature": 0, "max_tokens": 200}
    assert third.tools[0]["function"]["name"] == "get_weather"
    assert job.providers[0].model == "gpt-4o-mini"


def test_batch_provider_model_wins() -> None:
    """A provider with a model runs the batch on that model (running a batch elsewhere is the point)."""
    provider = ProviderSpec(name="p", dialect="openai-chat", base_url="https://x.test", model="other")
    job = load_job(ROOT / "jobs" / "batch.jsonl", provider=provider)
    assert job.providers[0].model == "other"


@pytest.mark.parametrize(
    ("lines", "line", "fix"),
    [
        pytest.param(
            '{"custom_id": "a", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user"}]}}\n'
            '{"custom_id": "a", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user"}]}}\n',
            2,
            "unique custom_id",
            id="dup-custom-id",
        ),
        pytest.param(
            '{"custom_id": "a", "url": "/v1/embeddings", "body": {}}\n', 1, "/v1/chat/completions", id="url"
        ),
        pytest.param("\n{oops\n", 2, "one request per line", id="json"),
        pytest.param(
            '{"custom_id": "a", "url": "/v1/chat/completions", "body": {}}\n', 1, "body.messages", id="body"
        ),
    ],
)
def test_batch_errors_name_the_line(tmp_path: Path, lines: str, line: int, fix: str) -> None:
    """A bad batch line is reported with its file, line number and fix."""
    path = tmp_path / "b.jsonl"
    path.write_text(lines)
    with pytest.raises(ConfigError) as info:
        load_batch_jsonl(path, provider=BATCH_PROVIDER)
    err = info.value
    assert err.path == str(path)
    assert err.line == line
    assert fix in (err.fix or "")
    assert f"{path}:{line}" in str(err)


def test_batch_line_a_dialect_cannot_express_names_the_line(tmp_path: Path) -> None:
    """A batch line with chat's `n` run on openai-responses fails at load, naming line and dialect."""
    path = tmp_path / "b.jsonl"
    ok = (
        '{"custom_id": "a", "url": "/v1/chat/completions", '
        '"body": {"messages": [{"role": "user", "content": "x"}]}}'
    )
    path.write_text(ok + "\n" + ok.replace('"a"', '"b"').replace("}]}", '}], "n": 2}') + "\n")
    provider = dataclasses.replace(BATCH_PROVIDER, dialect="openai-responses", model="m")
    with pytest.raises(ConfigError) as info:
        load_batch_jsonl(path, provider=provider)
    assert info.value.line == 2
    assert "openai-responses" in str(info.value)
    assert "'n'" in str(info.value)
    load_batch_jsonl(path, provider=dataclasses.replace(BATCH_PROVIDER, model="m"))  # chat takes it


def test_batch_without_provider_is_a_usage_error() -> None:
    """load_job on a .jsonl without a provider asks for --provider."""
    with pytest.raises(ConfigError, match="provider"):
        load_job(ROOT / "jobs" / "batch.jsonl")


def test_parse_job_works_on_text_alone() -> None:
    """parse_job validates text with no file system access (the pure layer)."""
    job = parse_job(BASE, path="virtual.toml")
    assert [p.name for p in job.providers] == ["p1", "p2"]
    assert job.locations["providers[1].name"] == _line(BASE, 'name = "p2"')


EXAMPLES = sorted(p for p in (ROOT / "jobs").iterdir() if p.suffix in (".toml", ".yaml", ".yml", ".jsonl"))


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in EXAMPLES])
def test_every_example_job_loads(path: Path) -> None:
    """Every example in jobs/ loads and validates, so none of them can rot."""
    job = load_job(path, provider=BATCH_PROVIDER if path.suffix == ".jsonl" else None)
    assert job.providers
    assert job.cases


def test_demo_runs_offline_on_all_dialects() -> None:
    """jobs/demo.toml uses only simulated providers, needs no key, and covers every dialect."""
    job = load_job(ROOT / "jobs" / "demo.toml")
    assert all(p.is_simulated for p in job.providers)
    assert {p.dialect for p in job.providers} == set(dialect_names())
    assert [p.name for p in job.providers if p.role == "judge"] == ["judge"]  # it grades the "sky" case
    check_environment(job, {})


@given(
    providers=st.integers(min_value=1, max_value=5),
    cases=st.integers(min_value=1, max_value=5),
    data=st.data(),
)
def test_toml_error_line_found_in_any_table(providers: int, cases: int, data: st.DataObject) -> None:
    """Wherever an unknown key sits among many [[providers]] and [[cases]] tables, its exact line is named."""
    parts = ['name = "gen"\n']
    for index in range(providers):
        parts.append(
            f'[[providers]]\nname = "p{index}"\ndialect = "runware"\nmodel = "m"\n'
            "simulator = { seed = 1 }\n"
            f"[providers.retry]\nmax_attempts = 2\n"
        )
    for index in range(cases):
        parts.append(
            f'[[cases]]\nid = "c{index}"\nprompt = """multi\nline = 3\n"""\n[cases.expect]\nequals = "x"\n'
        )
    section = data.draw(st.sampled_from(["providers", "retry", "cases", "expect"]))
    count = cases if section in ("cases", "expect") else providers
    target = data.draw(st.integers(min_value=0, max_value=count - 1))
    anchor = {
        "providers": "[[providers]]",
        "retry": "[providers.retry]",
        "cases": "[[cases]]",
        "expect": "[cases.expect]",
    }
    text = "".join(parts)
    lines = text.splitlines()
    header_line = [n for n, line in enumerate(lines) if line == anchor[section]][target]
    lines.insert(header_line + 1, "bogus = 1")
    text = "\n".join(lines) + "\n"
    owner = {"providers": "providers", "retry": "providers", "cases": "cases", "expect": "cases"}[section]
    suffix = {"providers": "", "retry": ".retry", "cases": "", "expect": ".expect"}[section]
    with pytest.raises(ConfigError) as info:
        parse_job(text, path="gen.toml")
    assert info.value.key == f"{owner}[{target}]{suffix}.bogus"
    assert info.value.line == header_line + 2


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("sk-live-secret\n", id="trailing-newline"),
        pytest.param("sk-live-secret\r", id="trailing-cr"),
        pytest.param("sk-live secret", id="space"),
        pytest.param("sk-live-sécret", id="non-ascii"),
    ],
)
def test_key_no_header_can_carry_is_refused_without_its_value(tmp_path: Path, value: str) -> None:
    """A key with whitespace or a control character fails the check, naming the variable, never the value."""
    path = write_job(tmp_path, BASE)
    job = load_job(path)
    with pytest.raises(ConfigError) as info:
        check_environment(job, {"P1_KEY": value, "P2_KEY": "sk-fine"})
    _assert_names(info.value, path, _line(BASE, "P1_KEY"), "providers[0].api_key_env", "export P1_KEY")
    assert "secret" not in str(info.value)
    assert "secret" not in repr(info.value)
