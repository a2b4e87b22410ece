"""What the simulator answers, as a pure function of the seed and the request: ``expected_output``.

Retries of one request get the same answer (the content seed ignores volatile fields such as
Runware's ``taskUUID``), so a test can compute exactly what a client must rebuild: text per choice,
reasoning, tool calls with their exact argument strings, usage and cost.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.simulator.config import SimulatorConfig
from runner.simulator.emitters import EMITTERS, Counts

if TYPE_CHECKING:
    from runner.simulator.emitters import Emitter, Task

_WORDS: Final = tuple(
    "the quick brown fox jumps over lazy dogs while rivers run south and north to the sea "  # noqa: SIM905
    "every model answers in tokens small pieces of text streamed across the wire one by one "
    "latency matters retries happen servers stall clients wait reports show what went wrong".split()
)
# Multi-byte words: one sits in every answer so a byte-by-byte dribble splits UTF-8 sequences.
_WIDE: Final = ("café", "naïve", "Straße", "日本語", "東京", "über", "déjà", "🚀")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectedToolCall:
    """One tool call as sent: ``arguments`` is the exact string the fragments concatenate to."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectedChoice:
    """One choice (OpenAI ``index``, Runware ``resultIndex``); tokens are the streamed units."""

    index: int
    text_tokens: tuple[str, ...]
    reasoning_tokens: tuple[str, ...]
    tool_calls: tuple[ExpectedToolCall, ...]
    finish_reason: str  # normalized: stop | length | tool_calls
    signature: str = ""  # Anthropic thinking signature

    @property
    def text(self) -> str:
        return "".join(self.text_tokens)

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_tokens)

    @property
    def output_tokens(self) -> int:
        args = sum(max(1, len(call.arguments) // 4) for call in self.tool_calls)
        return len(self.text_tokens) + len(self.reasoning_tokens) + args


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    """Everything one request's answer holds. ``usage`` is the dialect-native usage object the client
    ends with (None when the request does not get one); ``cost`` is the reported USD cost, if any."""

    dialect: str
    model: str
    stream: bool
    choices: tuple[ExpectedChoice, ...]
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    usage: dict[str, Any] | None
    cost: float | None
    steps: tuple[dict[str, Any], ...] = ()  # MiroMind reasoning_steps, in order
    citations: tuple[str, ...] = ()
    search_results: tuple[dict[str, Any], ...] = field(default=())


def expected_output(dialect: str, request: Any, config: SimulatorConfig | None = None) -> Expected:
    """The answer the simulator sends for ``request`` (the parsed JSON body) in ``dialect``.

    Raises:
        ValueError: the simulator does not speak ``dialect``, or answers ``request`` with a 400.
    """
    emitter = EMITTERS.get(dialect)
    if emitter is None:
        raise ValueError(f"unknown dialect {dialect!r}")
    task = emitter.read(request)
    if task is None:
        raise ValueError(f"the simulator refuses this {dialect} request body")
    return answer(emitter, task, config or SimulatorConfig())


def answer(emitter: Emitter, task: Task, config: SimulatorConfig) -> Expected:
    """The answer to a task the emitter has read: every random draw comes from the content seed."""
    rng = random.Random(content_seed(emitter.name, task.body, config.seed))
    miromind = emitter.has_flavors and config.flavor == "miromind"
    # MiroMind reasons in reasoning_steps instead of reasoning_content.
    reasons = (config.reasoning or task.reasoning) and not miromind
    choices = tuple(
        _choice(rng, emitter, task, config, index, reasons=reasons) for index in range(task.choices)
    )
    steps, citations, results = _miromind(rng) if miromind else ((), (), ())
    step_tokens = sum(len(s.get("thought", "").split()) for s in steps)
    prompt = prompt_tokens(task.body)
    completion = sum(c.output_tokens for c in choices) + step_tokens
    reasoning_count = sum(len(c.reasoning_tokens) for c in choices) + step_tokens
    cost = round((prompt * config.price_input + completion * config.price_output) / 1e6, 10)
    counts = Counts(
        prompt=prompt, completion=completion, reasoning=reasoning_count, searches=len(steps) // 2, cost=cost
    )
    usage, reported_cost = emitter.usage(task, config, counts)
    return Expected(
        dialect=emitter.name,
        model=task.model,
        stream=task.stream,
        choices=choices,
        prompt_tokens=prompt,
        completion_tokens=completion,
        reasoning_tokens=reasoning_count,
        usage=usage,
        cost=reported_cost,
        steps=steps,
        citations=citations,
        search_results=results,
    )


def _choice(
    rng: random.Random, emitter: Emitter, task: Task, config: SimulatorConfig, index: int, *, reasons: bool
) -> ExpectedChoice:
    # The draws happen in a fixed order (reasoning, tool calls, length, words): changing it changes
    # every seeded answer.
    reasoning = _words(rng, rng.randint(6, 16)) if reasons else ()
    calls = (
        _tool_calls(rng, emitter.tool_call_prefix, task.tools, config.tool_calls, index) if task.tools else ()
    )
    count = max(1, round(config.output_tokens.sample(rng)))
    if calls:
        count = min(count, emitter.words_before_tools)
    finish = "tool_calls" if calls else "stop"
    if task.max_tokens is not None and count > task.max_tokens:
        count, finish, calls = task.max_tokens, "length", ()
    text = _words(rng, count, wide=True) if count else ()
    if config.judge_pass_when is not None:
        # A judge answers its verdict, whatever the draws above said (they still happen: same order).
        text, calls, finish = _verdict(task.body, config.judge_pass_when), (), "stop"
        if task.max_tokens is not None and len(text) > task.max_tokens:
            text, finish = text[: task.max_tokens], "length"
    signature = "sig_" + hashlib.sha256("".join(reasoning).encode()).hexdigest()[:32] if reasoning else ""
    return ExpectedChoice(
        index=index,
        text_tokens=text,
        reasoning_tokens=reasoning,
        tool_calls=calls,
        finish_reason=finish,
        signature=signature,
    )


def content_seed(dialect: str, body: dict[str, Any], seed: int) -> str:
    """The content seed: the config seed and the request's stable parts (never Runware's taskUUID)."""
    stable = {k: v for k, v in body.items() if k not in ("taskUUID", "stream", "deliveryMethod")}
    digest = hashlib.sha256(orjson.dumps(stable, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{seed}:{dialect}:{digest}"


def prompt_tokens(body: dict[str, Any]) -> int:
    """A stable stand-in for a tokenizer: about four bytes of prompt JSON per token."""
    parts = [body.get("messages"), body.get("system"), body.get("tools")]
    return 1 + len(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)) // 4


def _verdict(body: dict[str, Any], pass_when: str) -> tuple[str, ...]:
    """A judge's answer: a fenced verdict JSON object, passing when ``pass_when`` matches the graded
    answer (the ``<answer>`` section of the request's text, else all of it), as tokens."""
    text = "\n".join(_strings(body))
    section = re.search(r"<answer>\n?(.*?)\n?</answer>", text, re.DOTALL)
    graded = section.group(1) if section else text
    passed = re.search(pass_when, graded) is not None
    verdict = {
        "pass": passed,
        "score": 1.0 if passed else 0.0,
        "reason": f"the answer {'matches' if passed else 'does not match'} {pass_when!r}",
    }
    words = f"```json\n{json.dumps(verdict)}\n```".split(" ")
    return tuple(w if i == 0 else " " + w for i, w in enumerate(words))


def _strings(value: Any) -> list[str]:
    """Every string in a request body, in order (the messages' texts, whatever the dialect's shape)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _words(rng: random.Random, count: int, *, wide: bool = False) -> tuple[str, ...]:
    words = [rng.choice(_WORDS) for _ in range(count)]
    if wide and count > 1:
        words[1] = rng.choice(_WIDE)
    return tuple(w if i == 0 else " " + w for i, w in enumerate(words))


def _tool_calls(
    rng: random.Random, prefix: str, tools: tuple[tuple[str, dict[str, Any]], ...], most: int, index: int
) -> tuple[ExpectedToolCall, ...]:
    calls = []
    for k in range(most):  # the same tool may be called several times, as models do
        name, schema = tools[k % len(tools)]
        props = schema.get("properties")
        args = {p: _value(rng, s) for p, s in props.items()} if isinstance(props, dict) else {}
        call_id = f"{prefix}{rng.getrandbits(64):016x}{index}{k}"
        arguments = orjson.dumps(args).decode()
        calls.append(ExpectedToolCall(id=call_id, name=name, arguments=arguments))
    return tuple(calls)


def _value(rng: random.Random, schema: Any) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(schema, dict) and isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    if kind == "integer":
        return rng.randint(0, 100)
    if kind == "number":
        return round(rng.uniform(0, 100), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        return [_value(rng, schema.get("items", {"type": "string"})) for _ in range(2)]
    return " ".join((rng.choice(_WORDS), rng.choice(_WIDE)))


def _miromind(
    rng: random.Random,
) -> tuple[tuple[dict[str, Any], ...], tuple[str, ...], tuple[dict[str, Any], ...]]:
    steps: list[dict[str, Any]] = []
    citations: list[str] = []
    results: list[dict[str, Any]] = []
    for k in range(rng.randint(1, 2)):
        steps.append({"type": "thinking", "thought": "".join(_words(rng, rng.randint(5, 10)))})
        query = " ".join(rng.choice(_WORDS) for _ in range(3))
        url = f"https://example.org/{k}/{rng.getrandbits(32):08x}"
        steps.append({"type": "web_search", "query": query, "results": [{"title": query, "url": url}]})
        citations.append(url)
        results.append({"title": query, "url": url, "snippet": "".join(_words(rng, 6))})
    return tuple(steps), tuple(citations), tuple(results)
