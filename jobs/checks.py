"""The custom check of jobs/checks.toml: runner imports this file when it loads the job."""

from __future__ import annotations

from typing import Any


def enough_words(completion: Any, vars: dict[str, Any]) -> dict[str, Any]:
    """Pass when the first choice's answer has at least ``min_words`` words (a row var; 5 without one)."""
    words = len(completion.choices[0].text.split())
    wanted = int(vars.get("min_words", 5))
    return {"pass": words >= wanted, "score": min(1.0, words / 30), "reason": f"{words} words (want {wanted})"}
