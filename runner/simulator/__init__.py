"""The built-in provider simulator: a real loopback HTTP/1.1 server for every dialect, with scripted faults.

Start it with ``handle = await nursery.start(runner.simulator.server.serve_simulator, config)``; compute
what it sends with ``expected_output``. The LATENCY and FAULT spec mini-languages are documented in
``runner.simulator.config``. This package re-exports only the parts without I/O, so that reading a
job's simulator table (and ``runner simulate --help``) does not load trio.
"""

from __future__ import annotations

from runner.simulator.config import (
    Dist,
    Fault,
    FaultPlan,
    Latency,
    SimulatorConfig,
    parse_faults,
    parse_latency,
)
from runner.simulator.log import ServedLog, ServedRequest
from runner.simulator.script import Expected, ExpectedChoice, ExpectedToolCall, expected_output

__all__ = [
    "Dist",
    "Expected",
    "ExpectedChoice",
    "ExpectedToolCall",
    "Fault",
    "FaultPlan",
    "Latency",
    "ServedLog",
    "ServedRequest",
    "SimulatorConfig",
    "expected_output",
    "parse_faults",
    "parse_latency",
]
