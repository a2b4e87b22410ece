"""A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

The pipe needs no websocket client and no port: Chromium reads NUL-terminated JSON commands on fd 3
and writes replies and events on fd 4. Every page load records console calls, uncaught exceptions,
log entries (CSP violations, failed loads) and every network request the page tried to make.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    # Any host name fails to resolve: even a request the page does make cannot leave the machine.
    # Loopback stays reachable, for the viewer's tests (runner view on 127.0.0.1).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--remote-debugging-pipe",
)


@dataclass
class PageLoad:
    """What happened while one page loaded."""

    url: str
    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def foreign_requests(self) -> list[str]:
        """Requests for anything but the page itself."""
        return [url for url in self.requests if url != self.url]

    @property
    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries, as text."""
        found = [json.dumps(c) for c in self.console if c.get("type") in ("error", "assert", "warning")]
        found += [json.dumps(e) for e in self.exceptions]
        found += [json.dumps(e) for e in self.log if e.get("level") in ("error", "warning")]
        return found


class Browser:
    """One Chromium process; ``load`` opens a URL in a fresh tab and reports what the page did."""

    def __init__(self, profile: Path) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        log = profile.parent / "chromium.log"
        self._pid = os.posix_spawn(
            CHROMIUM,
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, to_child_r, 3),
                (os.POSIX_SPAWN_DUP2, from_child_w, 4),
                (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                (os.POSIX_SPAWN_OPEN, 2, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            ],
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (OSError, TimeoutError, RuntimeError):
            os.kill(self._pid, 9)
        os.waitpid(self._pid, 0)
        os.close(self._to_child)
        os.close(self._from_child)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_child], [], [], remaining)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)  # type: ignore[no-any-return]

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = 20,
    ) -> dict[str, Any]:
        """Send one command and wait for its reply, keeping the events that arrive meanwhile."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        os.write(self._to_child, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})  # type: ignore[no-any-return]
            self._events.append(message)

    def wait_event(self, method: str, session: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(index)
            self._events.append(self._read_message(deadline))

    def evaluate(self, expression: str, session: str) -> Any:
        """Run ``expression`` from DevTools (not as page script) and return its JSON value."""
        reply = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=session,
        )
        return reply["result"].get("value")

    def load(
        self, url: str, *, width: int = 1280, height: int = 900, settle_s: float = 0.3
    ) -> tuple[PageLoad, str]:
        """Open ``url`` in a new tab; returns the record and the tab's session (close with ``close_tab``)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable", session=session)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        self._events = [e for e in self._events if e.get("sessionId") != session]
        self.call("Page.navigate", {"url": url}, session=session)
        self.wait_event("Page.loadEventFired", session)
        # Give late effects (an onerror after a failed image, a timer) the chance to show themselves.
        self.evaluate(f"new Promise(r => setTimeout(r, {int(settle_s * 1000)}))", session)
        record = PageLoad(url=url)
        for event in [e for e in self._events if e.get("sessionId") == session]:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                record.console.append(
                    {"type": params.get("type"), "args": [a.get("value") for a in params.get("args", [])]}
                )
            elif method == "Runtime.exceptionThrown":
                record.exceptions.append(params.get("exceptionDetails", {}))
            elif method == "Log.entryAdded":
                record.log.append(params.get("entry", {}))
            elif method == "Network.requestWillBeSent":
                record.requests.append(params["request"]["url"])
        self._events = [e for e in self._events if e.get("sessionId") != session]
        return record, session

    def screenshot(self, session: str, *, scale: float = 1.0) -> bytes:
        """A PNG of the viewport, scaled by ``scale``."""
        metrics = self.call("Page.getLayoutMetrics", session=session)["cssVisualViewport"]
        clip = {
            "x": 0,
            "y": 0,
            "width": metrics["clientWidth"],
            "height": metrics["clientHeight"],
            "scale": scale,
        }
        data = self.call("Page.captureScreenshot", {"format": "png", "clip": clip}, session=session)["data"]
        return base64.b64decode(data)

    def close_tab(self, session: str) -> None:
        self.call("Page.close", session=session)
