"""The whole exception tree of runner; every error the package raises on purpose is one of these.

    RunnerError
     ├── ConfigError                 a job file, option or environment variable is wrong (exit 2)
     ├── ProviderError               one HTTP attempt failed below HTTP (runner.run.attempt maps
     │    │                          httpx's, trio's and the OS's errors onto this subtree)
     │    ├── TransportError         reset or early close (a failed connection before any response)
     │    │    ├── ConnectError      no connection, or the request could not be sent
     │    │    └── TransportTimeoutError   httpx's connect or write timeout
     │    ├── StreamProtocolError    a body that cannot be decoded (a bad Content-Encoding)
     │    ├── ResponseTooLargeError  the body or one SSE event crossed its bound (max_response_bytes)
     │    └── NotAnEventStreamError  a 2xx answer that is no event stream (an HTML page)
     └── StorageError                the database refused or is not what we expect

A provider's answer is never an exception: an HTTP error status, an in-stream error event or a
malformed event is classified into the attempt's ``AttemptError`` (data, stored with the attempt).
A ``ProviderError`` is caught in the attempt that raised it and stored the same way.

Context (unit, attempt, status) travels in attributes, not only in the message. No message
ever carries an API key: keys are never passed to an exception.
"""

from __future__ import annotations


class RunnerError(Exception):
    """Root of every error runner raises on purpose."""


class ConfigError(RunnerError):
    """A job file, command-line option or environment variable is invalid.

    Attributes:
        path: the file at fault, if any.
        key: the dotted key at fault, if any (``providers[1].base_url``).
        line: the 1-based line in ``path``, where the format lets us know it.
        fix: one sentence telling the user what to change.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.path = path
        self.key = key
        self.line = line
        self.fix = fix
        super().__init__(message)

    def __str__(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where += f":{self.line}"
        parts = [f"{where}: " if where else ""]
        if self.key:
            parts.append(f"{self.key}: ")
        parts.append(super().__str__())
        if self.fix:
            parts.append(f" (fix: {self.fix})")
        return "".join(parts)


class ProviderError(RunnerError):
    """One HTTP attempt against a provider failed below HTTP: raised only by ``runner.run.attempt``
    (and ``runner.run.stream``, the body reader it calls).

    Attributes:
        unit_key: the unit the attempt belongs to (``provider/case/repeat``).
        attempt: the attempt's number within the unit (1 for the first).
        status: the HTTP status, when response headers had arrived (None: no response yet).
    """

    def __init__(
        self,
        message: str,
        *,
        unit_key: str | None = None,
        attempt: int | None = None,
        status: int | None = None,
    ) -> None:
        self.unit_key = unit_key
        self.attempt = attempt
        self.status = status
        super().__init__(message)


class TransportError(ProviderError):
    """The connection failed, was reset or closed early (a failed connection while ``status`` is None)."""


class ConnectError(TransportError):
    """No connection could be made, or the request could not be written to it."""


class TransportTimeoutError(TransportError):
    """httpx's connect or write timeout fired; the stream's own deadlines are cancel scopes, not errors."""


class StreamProtocolError(ProviderError):
    """The response body cannot be decoded, e.g. a ``Content-Encoding`` that does not match it."""


class ResponseTooLargeError(ProviderError):
    """The body passed the provider's ``max_response_bytes`` (decompressed), or one SSE event its bound.

    Raised by ``runner.run.stream`` while reading, and by ``runner.wire.sse.SSEDecoder``.
    """


class NotAnEventStreamError(ProviderError):
    """A 2xx response whose body is not an event stream: an HTML page (a proxy's error or login page)."""


class StorageError(RunnerError):
    """The database could not be opened, migrated, read or written."""


class NotFoundError(StorageError):
    """The database holds no such run, unit or attempt: the caller's reference is wrong, not the database."""
