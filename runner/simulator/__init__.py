"""The built-in provider simulator: a real loopback HTTP/1.1 server for every dialect, with scripted faults.

Start it with ``handle = await nursery.start(serve_simulator, config)``; compute what it sends with
``expected_output``. The LATENCY and FAULT spec mini-languages are documented in
``runner.simulator.config``.
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
from runner.simulator.server import SimulatorHandle, serve_simulator

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
    "SimulatorHandle",
    "expected_output",
    "parse_faults",
    "parse_latency",
    "serve_simulator",
]
