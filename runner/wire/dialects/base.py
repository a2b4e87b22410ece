"""The Dialect and Accumulator protocols: the one seam where a provider's wire shape is known.

A dialect builds the HTTP request for a provider and a case, and hands out accumulators: pure reducers
that take decoded SSE events one at a time and rebuild a ``Completion``. No I/O, no trio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.model import Completion, CompletionError
    from runner.spec import CaseSpec, ProviderSpec
    from runner.wire.sse import RawEvent, ServerSentEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    """A request ready to send. ``headers`` carry the API key, so they never appear in a repr."""

    method: str
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)


class Accumulator(Protocol):
    """A pure reducer over one stream's events.

    Two ways in, with the same result for the same events: ``feed`` takes one ``ServerSentEvent``;
    ``feed_many`` takes one read's worth of ``SSEDecoder.feed_raw`` items in order (the attempt
    layer's hot path: one call per read, and ``message`` data as raw bytes, so an accumulator can
    hand them to the JSON decoder without building a str and an event each; ``runner.wire.sse.as_event``
    turns an item back into an event). Events after ``is_done`` turned true are ignored.

    Neither raises on bad input: a malformed or out-of-order event is recorded as a
    ``protocol_error`` in the result (and ``is_done`` turns true), so the attempt is kept and can be
    retried. ``has_reasoning`` / ``has_answer`` flip to true at the first reasoning / answer token
    (answer: text, refusal or tool-call content), which is how the attempt layer times them.
    """

    @property
    def is_done(self) -> bool:
        """True once the stream's terminal signal, an error, or a protocol error was seen."""
        ...

    @property
    def has_reasoning(self) -> bool: ...

    @property
    def has_answer(self) -> bool: ...

    @property
    def pings(self) -> int:
        """Keep-alive events in the dialect's own shape (Anthropic ``ping``), for liveness."""
        ...

    def feed(self, event: ServerSentEvent) -> None: ...

    def feed_many(self, events: Sequence[RawEvent]) -> None: ...

    def result(self) -> Completion:
        """The completion rebuilt so far (partial when the stream was cut; ``complete`` says)."""
        ...


class Dialect(Protocol):
    """A provider wire shape: request building, stream accumulation, error-body parsing."""

    name: str

    def build_request(
        self, provider: ProviderSpec, case: CaseSpec, *, api_key: str | None
    ) -> HttpRequest: ...

    def new_accumulator(self) -> Accumulator: ...

    def parse_error_body(self, status: int, body: bytes) -> CompletionError | None:
        """The provider's error object from a non-2xx response body, if it has one."""
        ...
