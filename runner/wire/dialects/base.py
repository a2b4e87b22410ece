"""The Dialect and Accumulator protocols: the one seam where a provider's wire shape is known.

A dialect builds the HTTP request for a provider and a case, and hands out accumulators: pure reducers
that take decoded SSE events one at a time and rebuild a ``Completion``. No I/O, no trio.
``DialectBase`` holds what the three dialects share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Protocol, TypeVar

from runner.errors import ConfigError
from runner.wire.dialects.common import AccumulatorBase, parse_json_error_body

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner.model import Completion, CompletionError
    from runner.spec import CaseSpec, ProviderSpec
    from runner.wire.sse import RawEvent, ServerSentEvent, SSEDecoder

# The names a request's output-token cap goes by, in the order they are looked for.
_MAX_TOKEN_PARAMS: Final = ("max_tokens", "max_completion_tokens", "max_output_tokens", "maxTokens")

AccumulatorT = TypeVar("AccumulatorT", bound=AccumulatorBase)


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
    layer's hot path: one call per read, ``message`` data as raw bytes and a read's typed events as
    one ``TypedRun``, so an accumulator can hand them to the JSON decoder without building a str and
    an event each; ``runner.wire.sse.single_events`` expands runs and ``as_event`` turns an item
    back into an event). Events after ``is_done`` turned true are ignored.

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
    def has_error(self) -> bool:
        """True once the stream carried an error; ``is_done`` may wait for the terminal signal after it."""
        ...

    @property
    def has_reasoning(self) -> bool: ...

    @property
    def has_answer(self) -> bool: ...

    @property
    def tokens(self) -> int:
        """Deltas seen that carried a token: answer or reasoning text, tool-call fragments."""
        ...

    @property
    def pings(self) -> int:
        """Keep-alive events in the dialect's own shape (Anthropic ``ping``), for liveness."""
        ...

    def feed(self, event: ServerSentEvent) -> None: ...

    def feed_many(self, events: Sequence[RawEvent]) -> None: ...

    def feed_read(self, decoder: SSEDecoder, read: bytes) -> int:
        """One raw read of the body through ``decoder`` into this accumulator; how many SSE events it held.

        The same as ``feed_many(decoder.feed_raw(read))`` (and ``event_count`` of those items), in
        fewer steps where a dialect knows its common read (the attempt layer's hot path).
        """
        ...

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

    def max_output_tokens(self, params: Mapping[str, Any]) -> int | None:
        """The output-token cap a request built from these merged params asks for; None when it sets none.

        The rate limiter reserves TPM for it before sending (``runner.run.estimate.estimate_tokens``).
        """
        ...

    def param_problem(self, key: str, value: Any) -> str | None:
        """What to write instead of request param ``key`` = ``value`` when this dialect cannot send it
        (the provider would answer 400 at the first request); None when it can.

        The job loader asks for every param of a provider (its ``params`` and the defaults') and of a
        case, so such a param is a load error naming it and the dialect, with this as the fix.
        """
        ...

    def check_messages(self, case: CaseSpec) -> None:
        """Refuse, at job load, a case this dialect cannot express (images to a text-only API...).

        Called once per (case, provider) pair by the job loader, so an inexpressible conversation is a
        load error naming the case and the dialect, not a request the provider rejects mid-run.

        Raises:
            ConfigError: ``key`` is the part of the case at fault, relative to the case
                (``messages[2].content[0]``, ``tools``); the message names the case and the dialect.
        """
        ...


def max_tokens_param(*scopes: Mapping[str, Any]) -> int | None:
    """The first integer output-token cap in ``scopes``, searched in order (a bool is not a count)."""
    for scope in scopes:
        for name in _MAX_TOKEN_PARAMS:
            value = scope.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


class DialectBase(Generic[AccumulatorT]):
    """What every dialect shares: JSON in, SSE out, JSON error bodies, one accumulator type.

    A subclass sets ``name``, ``accumulator`` and its ``build_request``, and the key header when the
    provider does not take ``Authorization: Bearer``.
    """

    name: str
    accumulator: type[AccumulatorT]
    key_header: ClassVar[str] = "Authorization"
    key_prefix: ClassVar[str] = "Bearer "
    fixed_headers: ClassVar[Mapping[str, str]] = MappingProxyType({})  # the dialect's own, e.g. a version

    def new_accumulator(self) -> AccumulatorT:
        return self.accumulator()

    # Chat params this dialect's API refuses (400), each with the fix the load error gives.
    refused_params: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def param_problem(self, key: str, value: Any) -> str | None:
        return self.refused_params.get(key)

    def check_messages(self, case: CaseSpec) -> None:
        """Accept every case: a dialect that translates conversations overrides it to refuse what it can't."""

    def parse_error_body(self, status: int, body: bytes) -> CompletionError | None:
        return parse_json_error_body(body)

    def max_output_tokens(self, params: Mapping[str, Any]) -> int | None:
        return max_tokens_param(params)

    def inexpressible(self, case: CaseSpec, key: str, what: str, fix: str) -> ConfigError:
        """The load error for ``what`` at ``key`` (relative to the case) that this dialect cannot send."""
        return ConfigError(f"case {case.id!r}: {self.name} cannot express {what}", key=key, fix=fix)

    def request_headers(self, provider: ProviderSpec, api_key: str | None) -> dict[str, str]:
        """The headers of a streamed JSON request: the provider's own may override all but the key."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            **self.fixed_headers,
            **provider.headers,
        }
        if api_key:
            headers[self.key_header] = f"{self.key_prefix}{api_key}"
        return headers
