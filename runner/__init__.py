"""runner: a batch evaluation job runner for streamed LLM APIs."""

from __future__ import annotations

from runner.errors import (
    ClientError,
    ConfigError,
    ProviderError,
    RateLimitedError,
    RunnerError,
    ServerError,
    StorageError,
    StreamProtocolError,
    TransportError,
)
from runner.model import AttemptError, Choice, Completion, CompletionError, ToolCall, Usage
from runner.sse import ServerSentEvent, SSEDecoder

__version__ = "0.1.0"

__all__ = [
    "AttemptError",
    "Choice",
    "ClientError",
    "Completion",
    "CompletionError",
    "ConfigError",
    "ProviderError",
    "RateLimitedError",
    "RunnerError",
    "SSEDecoder",
    "ServerError",
    "ServerSentEvent",
    "StorageError",
    "StreamProtocolError",
    "ToolCall",
    "TransportError",
    "Usage",
    "__version__",
]
