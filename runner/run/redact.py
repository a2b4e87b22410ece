"""API keys out of everything a provider sent back (pure): one ``Redactor`` per run, built from every key.

A provider may echo the request's ``Authorization`` / ``x-api-key`` value in an error body, a stream
error or even the answer, and a gateway may echo another provider's key, so every configured key is
looked for in every attempt. Texts are searched assembled (a key split across SSE events is caught)
and the raw capture whole (a key split across reads is caught); a key is replaced by ``[REDACTED]``,
which keeps the ``Bearer`` / ``x-api-key:`` prefix around it and a captured stream parseable.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from runner.wire.replay import parse_body

if TYPE_CHECKING:
    from collections.abc import Iterable

    from runner.model import JSON, AttemptRecord, Choice, Completion, CompletionError

REDACTED: Final = "[REDACTED]"


@dataclass(frozen=True, slots=True)
class Redactor:
    """Replaces every key value in an attempt's texts and raw bytes; with no keys it changes nothing.

    ``keys`` are longest first, so a key that contains another is replaced whole.
    """

    keys: tuple[str, ...] = field(default=(), repr=False)
    raw_forms: tuple[bytes, ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, values: Iterable[str | None]) -> Redactor:
        """A redactor of these key values (None and empty ones are skipped)."""
        keys = sorted({value for value in values if value}, key=len, reverse=True)
        forms: set[bytes] = set()
        for key in keys:
            # In raw bytes a key may also appear JSON-escaped inside a string ("\/" is optional in JSON).
            escaped = json.dumps(key)[1:-1]
            forms.update((key.encode(), escaped.encode(), escaped.replace("/", "\\/").encode()))
        return cls(tuple(keys), tuple(sorted(forms, key=len, reverse=True)))

    def text(self, value: str) -> str:
        """``value`` with every key replaced by ``[REDACTED]``."""
        for key in self.keys:
            if key in value:
                value = value.replace(key, REDACTED)
        return value

    def data(self, value: JSON) -> JSON:
        """A JSON value (as ``json.loads`` returns it) with every string, keys included, redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        return value

    def raw(self, body: bytes) -> bytes:
        """Raw bytes with every key (plain or JSON-escaped) replaced by ``[REDACTED]``."""
        for form in self.raw_forms:
            if form in body:
                body = body.replace(form, REDACTED.encode())
        return body

    def mentions(self, value: JSON) -> bool:
        """Whether any string in ``value`` (a str or a JSON value, keys included) holds a key."""
        if isinstance(value, str):
            return any(key in value for key in self.keys)
        if isinstance(value, dict):
            return any(self.mentions(k) or self.mentions(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(self.mentions(item) for item in value)
        return False

    def record(self, record: AttemptRecord, dialect: str) -> AttemptRecord:
        """``record`` with no key left in its error, its (partial) completion or its raw capture.

        A capture that still rebuilds a key when replayed with ``dialect`` (the key was split across
        SSE events, so no byte of it can be replaced without breaking the stream) is dropped.
        """
        if not self.keys:
            return record
        error, completion, raw = record.error, record.completion, record.raw_capture
        said = self.mentions(error.message if error else None) or (
            completion is not None and self.mentions(completion.to_dict())
        )
        if not said and (raw is None or not any(form in raw for form in self.raw_forms)):
            return record  # the common case: nothing echoed, nothing copied
        if error is not None:
            error = dataclasses.replace(error, message=self.text(error.message))
        if completion is not None:
            completion = self._completion(completion)
        if raw is not None:
            raw = self.raw(raw)
            if said and self.mentions(parse_body(dialect, raw, http_status=record.http_status).to_dict()):
                raw = None
        # A replaced key changes the capture's length: its read offsets no longer hold, so they go.
        reads = record.raw_reads if raw == record.raw_capture else None
        return dataclasses.replace(
            record, error=error, completion=completion, raw_capture=raw, raw_reads=reads
        )

    def _optional(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def _completion(self, completion: Completion) -> Completion:
        usage = completion.usage
        return dataclasses.replace(
            completion,
            id=self._optional(completion.id),
            model=self._optional(completion.model),
            error=self._error(completion.error),
            choices=tuple(self._choice(choice) for choice in completion.choices),
            usage=dataclasses.replace(usage, raw=self.data(usage.raw)) if usage is not None else None,
            extras=self.data(completion.extras),
        )

    def _error(self, error: CompletionError | None) -> CompletionError | None:
        if error is None:
            return None
        code = self.text(error.code) if isinstance(error.code, str) else error.code
        return dataclasses.replace(
            error, type=self.text(error.type), message=self.text(error.message), code=code
        )

    def _choice(self, choice: Choice) -> Choice:
        return dataclasses.replace(
            choice,
            text=self.text(choice.text),
            reasoning=self.text(choice.reasoning),
            reasoning_steps=tuple(self.data(list(choice.reasoning_steps))),
            refusal=self._optional(choice.refusal),
            tool_calls=tuple(
                dataclasses.replace(
                    call,
                    id=self._optional(call.id),
                    name=self.text(call.name),
                    arguments=self.text(call.arguments),
                )
                for call in choice.tool_calls
            ),
            raw_finish_reason=self._optional(choice.raw_finish_reason),
        )


class RedactingFilter(logging.Filter):
    """A handler filter that redacts every key from a log line and its traceback before it is written."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redactor.text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Formatter.format uses exc_text when set: the traceback is formatted here, redacted.
            record.exc_text = self._redactor.text(logging.Formatter().formatException(record.exc_info))
        return True
