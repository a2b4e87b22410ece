"""The whole exception tree of runner; every error the package raises on purpose is one of these.

    RunnerError
     ├── ConfigError                 a job file, option or environment variable is wrong (exit 2)
     ├── ProviderError               something went wrong talking to a provider (one attempt)
     │    ├── TransportError         connect error, reset, early close, timeout
     │    ├── StreamProtocolError    bytes that are not the dialect's wire format
     │    ├── RateLimitedError       HTTP 429 (carries retry_after)
     │    ├── ServerError            HTTP 5xx
     │    └── ClientError            HTTP 4xx other than 429
     └── StorageError                the database refused or is not what we expect

Context (provider, unit, attempt, status) travels in attributes, not only in the message. No message
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
    """One attempt against a provider failed.

    Attributes:
        provider: the provider's name in the job.
        status: the HTTP status, when there was a response.
    """

    def __init__(self, message: str, *, provider: str | None = None, status: int | None = None):
        self.provider = provider
        self.status = status
        super().__init__(message)


class TransportError(ProviderError):
    """The connection failed, was reset, closed early or timed out."""


class StreamProtocolError(ProviderError):
    """The response body is not valid for the provider's dialect."""


class RateLimitedError(ProviderError):
    """HTTP 429; ``retry_after`` is the server's requested wait in seconds, if it named one."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, provider=provider, status=status)


class ServerError(ProviderError):
    """HTTP 5xx."""


class ClientError(ProviderError):
    """HTTP 4xx other than 429."""


class StorageError(RunnerError):
    """The database could not be opened, migrated, read or written."""
