"""Tests of the runware dialect: each example stream of Runware's streaming API, and request building."""

from __future__ import annotations

import uuid

import orjson
import pytest

from runner.simulator import expected_output
from runner.spec import CaseSpec, ProviderSpec, request_params
from runner.wire.dialects import get_dialect
from runner.wire.replay import parse_stream
from tests.streams import body, fixture


def test_basic_stream_with_ping() -> None:
    """The basic seed stream: ping comments skipped, text joined, [DONE] completes."""
    completion = parse_stream("runware", fixture("runware_basic.sse"))
    assert completion.complete
    assert completion.id == "a770f077-f413-47de-9dac-be0b26a35da6"
    assert completion.choices[0].text == "Hello there"
    assert completion.choices[0].finish_reason == "stop"


def test_content_chunks_without_end_are_incomplete() -> None:
    """Case 14 (Runware): content chunks without finishReason or [DONE] are an incomplete answer."""
    completion = parse_stream("runware", fixture("runware_content_chunks.sse"))
    assert completion.choices[0].text == "The answer is 42."
    assert not completion.complete


def test_reasoning_then_text() -> None:
    """delta.reasoningContent is the reasoning, delta.text the answer."""
    choice = parse_stream("runware", fixture("runware_reasoning.sse")).choices[0]
    assert choice.reasoning.endswith("4. Provide short answer.")
    assert choice.reasoning.startswith('The user asks: "What is 2+2?')
    assert choice.text == "4"


def test_multiple_results_by_result_index() -> None:
    """Several results are grouped by resultIndex and finish independently."""
    completion = parse_stream("runware", fixture("runware_multiple_results.sse"))
    assert [c.text for c in completion.choices] == ["Paris", "The capital is Paris."]
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.complete


def test_final_chunk_and_usage_with_cost() -> None:
    """The final chunk carries camelCase usage and a top-level cost in USD."""
    assert parse_stream("runware", fixture("runware_final_chunk.sse")).complete
    usage = parse_stream("runware", fixture("runware_usage_cost.sse")).usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (51, 38, 89)
    assert usage.cost == pytest.approx(0.000061)
    assert usage.raw == {"promptTokens": 51, "completionTokens": 38, "totalTokens": 89}


def test_errors_array() -> None:
    """An errors array mid-stream becomes the error, typed by its code."""
    completion = parse_stream("runware", fixture("runware_error.sse"))
    assert completion.error is not None
    assert completion.error.type == "timeoutProvider"
    assert completion.error.message == "The provider timed out while generating the response."
    assert not completion.complete


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        pytest.param("tool_use", "tool_calls", id="tool_use"),
        pytest.param("content_filter", "content_filter", id="content_filter"),
        pytest.param("unknown", None, id="unknown"),
    ],
)
def test_finish_reasons(raw: str, normalized: str | None) -> None:
    """Case 26 (Runware): finishReason values from the seed table map or stay raw."""
    completion = parse_stream("runware", body({"taskUUID": "t", "delta": {}, "finishReason": raw}))
    assert (completion.choices[0].finish_reason, completion.choices[0].raw_finish_reason) == (normalized, raw)


def test_reasoning_and_cached_counts() -> None:
    """Reasoning and cached token counts are read when Runware reports them."""
    usage = parse_stream(
        "runware",
        body(
            {
                "delta": {},
                "finishReason": "stop",
                "usage": {"promptTokens": 5, "reasoningTokens": 3, "cachedTokens": 2},
            }
        ),
    ).usage
    assert usage is not None
    assert (usage.reasoning_tokens, usage.cached_input_tokens) == (3, 2)


def test_build_request() -> None:
    """The body is a JSON array of one streaming textInference task with a deterministic taskUUID."""
    provider = ProviderSpec(
        name="rw",
        dialect="runware",
        base_url="https://api.runware.ai/v1",
        model="minimax:m2.7@0",
        params={"temperature": 1.0},
    )
    case = CaseSpec(
        id="c", messages=({"role": "user", "content": "Hello"},), params={"max_tokens": 512, "stop": "x"}
    )
    dialect = get_dialect("runware")
    request = dialect.build_request(provider, case, api_key="rw-key")
    assert request.url == "https://api.runware.ai/v1"
    assert request.headers["Authorization"] == "Bearer rw-key"
    (task,) = orjson.loads(request.body)
    assert task["taskType"] == "textInference"
    assert task["deliveryMethod"] == "stream"
    assert task["includeUsage"] is True
    assert task["includeCost"] is True
    assert task["settings"] == {"temperature": 1.0, "maxTokens": 512, "stopSequences": ["x"]}
    assert uuid.UUID(task["taskUUID"])
    again = orjson.loads(dialect.build_request(provider, case, api_key="other").body)[0]
    assert again["taskUUID"] == task["taskUUID"]
    other_case = CaseSpec(id="d", messages=case.messages, params=case.params)
    assert (
        orjson.loads(dialect.build_request(provider, other_case, api_key=None).body)[0]["taskUUID"]
        != task["taskUUID"]
    )


def test_chat_names_runware_has_its_own_for_are_translated() -> None:
    """n is Runware's numberResults (the seed: several results interleave by resultIndex), and
    max_output_tokens, a cap runner reserves TPM for, is settings.maxTokens: both went into the task
    as written, fields Runware does not have (one result, no cap)."""
    provider = ProviderSpec(
        name="rw", dialect="runware", base_url="https://x.test/v1", model="m", params={"n": 2}
    )
    case = CaseSpec(id="c", messages=({"role": "user", "content": "Hi"},), params={"max_output_tokens": 64})
    dialect = get_dialect("runware")
    sent = orjson.loads(dialect.build_request(provider, case, api_key=None).body)
    (task,) = sent
    assert task["numberResults"] == 2
    assert task["settings"] == {"maxTokens": 64}
    assert {"n", "max_output_tokens"}.isdisjoint(task)
    assert dialect.max_output_tokens(request_params(provider, case)) == 64
    # The simulator, read as Runware reads the task: two results.
    assert len(expected_output("runware", sent).choices) == 2


def test_parse_error_body() -> None:
    """A Runware JSON error body becomes a CompletionError typed by its code."""
    error = get_dialect("runware").parse_error_body(
        401, b'{"errors":[{"code":"invalidApiKey","message":"bad key"}]}'
    )
    assert error is not None
    assert (error.type, error.code) == ("invalidApiKey", "invalidApiKey")
