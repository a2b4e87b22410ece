"""runner: a batch evaluation job runner for streamed LLM APIs.

The public API, re-exported: the result model, the error tree, the SSE decoder, dialects, and job files.
"""

from __future__ import annotations

from runner.errors import (
    ConfigError,
    ConnectError,
    ProviderError,
    RunnerError,
    StorageError,
    StreamProtocolError,
    TransportError,
    TransportTimeoutError,
)
from runner.job.load import load_job, parse_job
from runner.model import (
    ERROR_KINDS,
    FINISH_REASONS,
    AttemptError,
    AttemptRecord,
    AttemptTiming,
    Choice,
    Completion,
    CompletionError,
    ToolCall,
    Usage,
)
from runner.spec import CaseSpec, JobSpec, Price, ProviderSpec, RetryPolicy, Timeouts
from runner.wire.dialects import get_dialect
from runner.wire.dialects.base import Accumulator, Dialect, HttpRequest
from runner.wire.replay import parse_stream
from runner.wire.sse import ServerSentEvent, SSEDecoder

__version__ = "0.1.0"  # the one source: pyproject.toml reads it at build time

__all__ = [
    "ERROR_KINDS",
    "FINISH_REASONS",
    "Accumulator",
    "AttemptError",
    "AttemptRecord",
    "AttemptTiming",
    "CaseSpec",
    "Choice",
    "Completion",
    "CompletionError",
    "ConfigError",
    "ConnectError",
    "Dialect",
    "HttpRequest",
    "JobSpec",
    "Price",
    "ProviderError",
    "ProviderSpec",
    "RetryPolicy",
    "RunnerError",
    "SSEDecoder",
    "ServerSentEvent",
    "StorageError",
    "StreamProtocolError",
    "Timeouts",
    "ToolCall",
    "TransportError",
    "TransportTimeoutError",
    "Usage",
    "__version__",
    "get_dialect",
    "load_job",
    "parse_job",
    "parse_stream",
]
