"""Sans-IO: the instants of one attempt, its phase, and the deadline its one cancel scope must have.

runner.run.attempt moves that scope's deadline as the phases pass (first byte, first token, idle, token
idle, total); this module only computes it, so the limits are tested without a socket or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from runner.spec import Timeouts

# After an in-stream error the stream's terminal signal may still follow (MiroMind: an error finish,
# then [DONE]); it is waited for this long at most, so a stall after the error is no timeout.
ERROR_GRACE_SECONDS = 2.0
# Moving a cancel scope's deadline re-registers it with trio (a few microseconds, through a
# @contextmanager): with chunks microseconds apart, or 1,000 streams each sending every 20 ms, doing it
# per read is a large share of runner's own work. The idle deadline is pushed at most once per
# "slack" seconds, always to "newest push + idle + slack", so a timeout never fires early and at most
# the slack late. The slack is a share of the shortest gap limit (idle or token_idle), within bounds:
# 5 ms up to a 5 s limit, 60 ms for the 60 s default (20 ms gaps then push once per ~3 reads instead of
# at every read), 100 ms at most.
DEADLINE_SLACK = 0.005  # the least slack
DEADLINE_SLACK_SHARE = 0.001
DEADLINE_SLACK_MAX = 0.1

Phase = Literal["connect", "error-body", "body"]


@dataclass(slots=True)
class Clock:
    """Monotonic instants of one attempt (trio's clock, so tests with autojump_clock stay exact).

    On runner's transport over plain TCP on Linux, the headers, the first byte and the first tokens
    are dated by when the kernel received their bytes (runner.http.stamp), placed on this clock: a
    loop too busy to read them at once does not add its delay to them. Elsewhere (stock httpx, TLS,
    another OS, a mock clock), by when the loop read them. Later reads keep the loop's time (gaps).
    """

    start: float
    headers: float | None = None
    first_byte: float | None = None
    first_reasoning: float | None = None
    first_answer: float | None = None
    end: float | None = None


class Deadlines:
    """Sans-IO: the phase of one attempt and the deadline its one cancel scope must have.

    ``first_byte`` until the response headers, then ``first_token`` until the first reasoning or
    answer token, ``idle`` between two body reads (heartbeats count as bytes), ``token_idle`` (when
    set) between two tokens (heartbeats do not count), ``total`` over all.
    """

    __slots__ = (
        "_first_token",
        "_hard",
        "_token_pushed",
        "connect",
        "in_error_grace",
        "last_token",
        "phase",
        "slack",
        "timeouts",
    )

    def __init__(self, timeouts: Timeouts, start: float) -> None:
        self.timeouts = timeouts
        self.phase: Phase = "connect"
        self.in_error_grace = False  # the stream carried an error; only its terminal signal is awaited
        self.last_token: float | None = None  # when the latest token arrived (kept for token_idle)
        self._token_pushed = start  # the latest token time a forced push took into the deadline
        self._hard = start + timeouts.total
        self._first_token = start + timeouts.first_token
        self.connect = min(start + timeouts.first_byte, self._hard)
        shortest = min(timeouts.idle, timeouts.token_idle or timeouts.idle)
        self.slack = min(DEADLINE_SLACK_MAX, max(DEADLINE_SLACK, shortest * DEADLINE_SLACK_SHARE))

    def body(self, now: float) -> float:
        """The deadline once 2xx headers arrived at ``now``."""
        self.phase = "body"
        return self.after_read(now, has_token=False)

    def error_body(self, now: float) -> float:
        """The deadline once non-2xx headers arrived at ``now``: ``idle`` for their body, not ``first_byte``.

        The first-byte limit is met once headers came; kept, it would cut a body that follows them
        late and turn the server's answer (its status, its Retry-After) into a timeout.
        """
        self.phase = "error-body"
        return min(now + self.timeouts.idle + self.slack, self._hard)

    def after_read(self, now: float, *, has_token: bool) -> float:
        """The deadline after a read at ``now``; the first token lifts the first-token limit."""
        limit = now + self.timeouts.idle + self.slack
        if not has_token:
            limit = min(limit, self._first_token)
        elif self.timeouts.token_idle is not None and self.last_token is not None:
            limit = min(limit, self.last_token + self.timeouts.token_idle + self.slack)
        return min(limit, self._hard)

    def token_seen(self, now: float) -> bool:
        """Note a read that carried a token; True when the deadline must be pushed now.

        The pushed deadline holds (token time it saw) + token_idle + slack: a token more than the
        slack after the one a push last took must push, or the scope would fire early.
        """
        self.last_token = now
        if now - self._token_pushed <= self.slack:
            return False
        self._token_pushed = now
        return True

    def after_error(self, now: float) -> float:
        """The deadline once the stream carried an error at ``now``: a short grace for its terminal signal."""
        self.in_error_grace = True
        self._hard = min(self._hard, now + ERROR_GRACE_SECONDS)
        return self._hard

    def timeout_message(self, clock: Clock) -> str:
        """Which limit ended the attempt, in words."""
        timeouts = self.timeouts
        elapsed = (clock.end or clock.start) - clock.start
        if elapsed >= timeouts.total - 1e-9:
            return f"total timeout ({timeouts.total:g} s) during {self.phase}"
        if clock.headers is None:
            return f"no response headers within {timeouts.first_byte:g} s"
        if self.phase == "error-body":
            return f"the error body stalled for more than {timeouts.idle:g} s"
        if clock.first_reasoning is None and clock.first_answer is None:
            return f"no token within {timeouts.first_token:g} s (or {timeouts.idle:g} s of silence)"
        token_idle, end = timeouts.token_idle, clock.end or clock.start
        if token_idle is not None and self.last_token is not None and end - self.last_token >= token_idle:
            return f"no token for more than {token_idle:g} s (token_idle; heartbeats do not count)"
        return f"idle for more than {timeouts.idle:g} s"
