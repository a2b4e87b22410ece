"""JobSpec -> Units with stable keys. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    """One provider x case x repeat of a run: the thing that is queued, claimed, retried and stored.

    ``key`` is stable across resumes and runs (``provider/case/repeat``); ``request_hash`` is the
    sha256 of the exact request (dialect, base URL, model, messages, tools, params) for ``--reuse``.
    """

    key: str
    provider: str
    case_id: str
    repeat: int
    request_hash: str
