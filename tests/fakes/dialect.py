"""A tiny dialect implementing the Dialect protocol (a documented seam), for attempt and engine tests.

Events: ``R:text`` is reasoning, ``T:text`` is answer text, ``E:message`` is an in-stream error,
``BAD`` is a malformed chunk, ``[DONE]`` ends the stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.model import PROTOCOL_ERROR, Choice, Completion, CompletionError
from runner.spec import CaseSpec, ProviderSpec
from runner.wire.dialects.base import HttpRequest
from runner.wire.events import event_count
from runner.wire.sse import RawEvent, ServerSentEvent, SSEDecoder, as_event, single_events


@dataclass
class FakeAccumulator:
    """Appends R:/T: payloads; stops at [DONE], E: or BAD."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    error: CompletionError | None = None
    complete: bool = False
    pings: int = 0

    @property
    def is_done(self) -> bool:
        return self.complete or self.error is not None

    @property
    def tokens(self) -> int:
        return len(self.text) + len(self.reasoning)

    @property
    def has_error(self) -> bool:
        return self.error is not None

    @property
    def has_reasoning(self) -> bool:
        return bool(self.reasoning)

    @property
    def has_answer(self) -> bool:
        return bool(self.text)

    def feed_many(self, events: Sequence[RawEvent]) -> None:
        for event in single_events(events):
            self.feed(as_event(event))

    def feed_read(self, decoder: SSEDecoder, read: bytes) -> int:
        events = decoder.feed_raw(read)
        self.feed_many(events)
        return event_count(events)

    def feed(self, event: ServerSentEvent) -> None:
        data = event.data
        if data == "[DONE]":
            self.complete = True
        elif data.startswith("R:"):
            self.reasoning.append(data[2:])
        elif data.startswith("T:"):
            self.text.append(data[2:])
        elif data.startswith("E:"):
            self.error = CompletionError(type="server_error", message=data[2:])
        else:
            self.error = CompletionError(type=PROTOCOL_ERROR, message=f"bad chunk {data[:20]!r}")

    def result(self) -> Completion:
        choice = Choice(index=0, text="".join(self.text), reasoning="".join(self.reasoning))
        return Completion(complete=self.complete, error=self.error, choices=(choice,))


class FakeDialect:
    """Posts the case's first message to ``{base_url}/fake``."""

    name = "fake"

    def build_request(self, provider: ProviderSpec, case: CaseSpec, *, api_key: str | None) -> HttpRequest:
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        body = str(case.messages[0]["content"]).encode()
        return HttpRequest(method="POST", url=f"{provider.base_url}/fake", headers=headers, body=body)

    def new_accumulator(self) -> FakeAccumulator:
        return FakeAccumulator()

    def parse_error_body(self, status: int, body: bytes) -> CompletionError | None:
        return CompletionError(type="http_error", message=body.decode("utf-8", "replace")[:200])

    def max_output_tokens(self, params: Mapping[str, Any]) -> int | None:
        return None  # the fake's requests carry no output cap

    def param_problem(self, key: str, value: Any) -> str | None:
        return None  # the fake sends no params

    def check_messages(self, case: CaseSpec) -> None:
        """Every case: the fake sends its first message as is."""
        return None  # the fake sends any case
