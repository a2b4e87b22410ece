"""The emitter registry covers every dialect once; each emitter reads and refuses bodies as its API does."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio

from runner.simulator import SimulatorConfig, expected_output
from runner.simulator.emitters import EMITTERS, FALLBACK, Emitter, InvalidRequestError, build_emitters, names
from runner.simulator.log import AttemptCounter, ServedLog
from runner.simulator.server import SimulatorHandle
from runner.wire.dialects import names as dialect_names
from tests.conftest import StartSimulator, http_request, raw_exchange

MESSAGES = [{"role": "user", "content": "hi"}]
EMITTER_PARAMS = [pytest.param(EMITTERS[name], id=name) for name in names()]


def test_names_are_the_dialects_in_a_stable_order() -> None:
    """The simulator speaks exactly the dialects a job file may name, in the documented order."""
    assert names() == ("openai-chat", "anthropic-messages", "runware", "gemini", "openai-responses")
    assert set(names()) == set(dialect_names())
    assert FALLBACK in EMITTERS


def test_build_emitters_is_fresh_and_keyed_by_name() -> None:
    """``build_emitters`` returns a new mapping keyed by each emitter's own name."""
    built = build_emitters()
    assert built is not build_emitters()
    assert all(emitter.name == name for name, emitter in built.items())


def test_routes_are_distinct() -> None:
    """No two emitters claim the same path, so routing a request is a dictionary lookup."""
    routes = [emitter.route for emitter in EMITTERS.values()]
    assert len(set(routes)) == len(routes)


@pytest.mark.parametrize(
    ("dialect", "body"),
    [
        pytest.param("openai-chat", {"model": "m"}, id="openai-no-messages"),
        pytest.param("openai-chat", [{"messages": MESSAGES}], id="openai-list"),
        pytest.param("anthropic-messages", {"messages": "hi"}, id="anthropic-messages-not-list"),
        pytest.param("runware", {"taskType": "textInference", "messages": MESSAGES}, id="runware-dict"),
        pytest.param("runware", [], id="runware-empty"),
        pytest.param("runware", [{"taskType": "imageInference"}], id="runware-other-task"),
        pytest.param("runware", None, id="runware-null"),
        # The Responses API refuses chat's shapes (its keys: test_read_refuses_unknown_parameters)
        pytest.param(
            "openai-responses",
            {"model": "m", "input": "hi", "tools": [{"type": "function", "function": {"name": "f"}}]},
            id="responses-chat-tool",
        ),
        pytest.param(
            "openai-responses",
            {"model": "m", "input": [{"type": "function_call_output", "call_id": "c1", "output": "x"}]},
            id="responses-output-without-call",
        ),
        pytest.param(
            "openai-responses",
            {
                "model": "m",
                "input": [
                    {"role": "user", "content": "hi"},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                    {"role": "user", "content": "and?"},
                ],
            },
            id="responses-call-without-output",
        ),
        pytest.param(
            "openai-responses",
            {"model": "m", "input": "hi", "tool_choice": {"type": "function", "function": {"name": "f"}}},
            id="responses-chat-tool-choice",
        ),
        pytest.param(
            "openai-responses",
            {
                "model": "m",
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "image_url": "data:image/bmp;base64,AA"}],
                    }
                ],
            },
            id="responses-bmp-image",
        ),
        pytest.param(
            "openai-responses",
            {"model": "m", "input": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
            id="responses-chat-text-part",
        ),
        pytest.param(
            "openai-responses",
            {"model": "m", "input": [{"role": "tool", "tool_call_id": "c1", "content": "x"}]},
            id="responses-tool-role",
        ),
    ],
)
def test_read_refuses_bodies_the_api_refuses(dialect: str, body: Any) -> None:
    """A body the provider would reject reads as no task, and expected_output says so."""
    assert EMITTERS[dialect].read(body) is None
    with pytest.raises(ValueError, match="refuses"):
        expected_output(dialect, body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "m", "messages": MESSAGES}, "Unknown parameter: 'messages'."),
        ({"model": "m", "input": "hi", "max_tokens": 5}, "Unknown parameter: 'max_tokens'."),
        ({"model": "m", "input": "hi", "reasoning_effort": "low"}, "Unknown parameter: 'reasoning_effort'."),
    ],
)
def test_read_refuses_unknown_parameters(body: dict[str, Any], message: str) -> None:
    """Chat's keys sent to the Responses API: its 400, with its message."""
    with pytest.raises(InvalidRequestError) as caught:
        EMITTERS["openai-responses"].read(body)
    assert str(caught.value) == message


def test_read_openai_chat_task() -> None:
    """openai-chat reads n, max_completion_tokens over max_tokens, reasoning_effort and function tools."""
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body = {
        "model": "m",
        "messages": MESSAGES,
        "stream": True,
        "n": 3,
        "max_tokens": 9,
        "max_completion_tokens": 5,
        "reasoning_effort": "low",
        "tools": [tool, {"function": "not a tool"}, 7],
    }
    task = EMITTERS["openai-chat"].read(body)
    assert task is not None
    assert (task.model, task.stream, task.choices, task.max_tokens, task.reasoning) == ("m", True, 3, 5, True)
    assert task.tools == (("f", {"type": "object"}),)


def test_read_anthropic_task() -> None:
    """anthropic-messages always answers once and reasons only when thinking is enabled."""
    tool = {"name": "g", "input_schema": {"type": "object"}}
    body = {"messages": MESSAGES, "max_tokens": 0, "thinking": {"type": "enabled"}, "tools": [tool]}
    task = EMITTERS["anthropic-messages"].read(body)
    assert task is not None
    assert (task.model, task.stream, task.choices, task.max_tokens, task.reasoning) == (
        "sim-model",
        False,
        1,
        None,
        True,
    )
    assert task.tools == (("g", {"type": "object"}),)


def test_read_runware_task() -> None:
    """runware answers the first task of the list: numberResults, settings.maxTokens, stream delivery."""
    first = {
        "taskType": "textInference",
        "messages": MESSAGES,
        "numberResults": 2,
        "deliveryMethod": "stream",
        "settings": {"maxTokens": 7},
    }
    task = EMITTERS["runware"].read([first, {"taskType": "other"}])
    assert task is not None
    assert task.body is first
    assert (task.stream, task.choices, task.max_tokens, task.reasoning, task.tools) == (True, 2, 7, False, ())
    # Runware documents no tools for textInference: a task offering some is refused, not answered.
    with pytest.raises(InvalidRequestError, match="tools"):
        EMITTERS["runware"].read([{**first, "tools": [{"name": "g"}]}])


@pytest.mark.parametrize("emitter", EMITTER_PARAMS)
@pytest.mark.parametrize("status", [400, 429, 418, 503, 529])
def test_error_body_is_json_naming_the_status(emitter: Emitter, status: int) -> None:
    """Every emitter's error body is JSON whose message names the status, and a quota one says so."""
    body = emitter.error_body(status)
    assert isinstance(orjson.loads(body), dict)
    assert f"Simulated {status} ".encode() in body
    assert b"insufficient_quota" in emitter.error_body(429, quota=True)


@pytest.mark.parametrize("emitter", EMITTER_PARAMS)
async def test_each_route_serves_its_dialect(simulator: SimulatorHandle, emitter: Emitter) -> None:
    """A request POSTed to an emitter's route is logged under that emitter's dialect."""
    body: Any = {"model": "m", "messages": MESSAGES, "max_tokens": 5}
    if emitter.name == "runware":
        body = [{"taskType": "textInference", "taskUUID": "u", "messages": MESSAGES}]
    if emitter.name == "gemini":
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    if emitter.name == "openai-responses":
        body = {"model": "m", "input": MESSAGES, "max_output_tokens": 5}
    with trio.fail_after(10):
        response = await raw_exchange(simulator.port, http_request(emitter.route, body))
    assert response.status == 200
    assert [entry.dialect for entry in simulator.log] == [emitter.name]
    assert simulator.base_url(emitter.name) == simulator.origin + emitter.base_path


def test_attempt_counter_counts_per_key() -> None:
    """Each key counts its own attempts from 1."""
    counter = AttemptCounter()
    assert [counter.next(k) for k in ("a", "b", "a", "a", "b")] == [1, 1, 2, 3, 2]


def test_attempt_counter_is_bounded_and_forgets_the_least_recent_key() -> None:
    """Past its capacity the counter forgets the key seen least recently, never a recent one."""
    counter = AttemptCounter(capacity=2)
    counter.next("a")
    counter.next("b")
    counter.next("a")  # "a" is now the most recent
    counter.next("c")  # evicts "b"
    assert len(counter) == 2
    assert counter.next("a") == 3
    assert counter.next("b") == 1  # forgotten, so counted afresh (and "c" goes)
    for i in range(1000):
        counter.next(str(i))
    assert len(counter) == 2


async def test_server_numbers_attempts_per_key(start_simulator: StartSimulator) -> None:
    """The server numbers each request key's attempts through its counter (whose cap is tested above)."""
    handle = await start_simulator(SimulatorConfig())
    with trio.fail_after(20):
        for i in range(3):
            body = {"model": "m", "messages": MESSAGES, "max_tokens": 1}
            await raw_exchange(
                handle.port, http_request("/v1/chat/completions", body, {"x-sim-key": f"k{i % 2}"})
            )
    assert [entry.attempt for entry in handle.log] == [1, 1, 2]


def test_served_log_record_numbers_entries() -> None:
    """The log numbers entries in arrival order and hands out read-only snapshots."""
    log = ServedLog()
    for attempt in (1, 2):
        log.record(
            method="POST",
            path="/v1",
            dialect="runware",
            headers={},
            body=None,
            fingerprint="f",
            attempt=attempt,
            fault="ok",
            time=0.0,
        )
    assert [entry.seq for entry in log] == [0, 1]
    assert isinstance(log.entries, tuple)
    assert [entry.attempt for entry in log.attempts("f")] == [1, 2]
    assert len(log) == 2
    assert log[1].attempt == 2


def test_served_log_keeps_counts_and_a_bounded_ring() -> None:
    """Past its capacity the log keeps the latest requests whole and still counts every one."""
    log = ServedLog(capacity=3)
    for number in range(1, 6):
        log.record(
            method="POST",
            path="/v1",
            dialect="openai-chat",
            headers={},
            body={"n": number},
            fingerprint=f"f{number}",
            attempt=1,
            fault="http_401" if number % 2 else "ok",
            time=0.0,
        )
    assert len(log) == 5
    assert [entry.seq for entry in log] == [2, 3, 4]
    assert log[0].body == {"n": 3}
    assert log.faults == {"http_401": 3, "ok": 2}
    assert log.attempts("f1") == []


def test_served_log_is_bounded_by_default() -> None:
    """The in-process simulator's log holds at most MAX_ENTRIES requests, however many it serves."""
    from runner.simulator.log import MAX_ENTRIES

    log = ServedLog()
    for number in range(MAX_ENTRIES + 10):
        log.record(
            method="POST",
            path="/v1",
            dialect="openai-chat",
            headers={},
            body=None,
            fingerprint="f",
            attempt=number + 1,
            fault="ok",
            time=0.0,
        )
    assert len(log.entries) == MAX_ENTRIES
    assert len(log) == MAX_ENTRIES + 10
