"""OpenAI Batch API input lines (JSONL) -> a ``JobSpec``: one case per line, run on a given provider. Pure."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from runner.errors import ConfigError
from runner.job.case import check_messages, check_tool, check_translatable
from runner.job.source import Where
from runner.spec import CaseSpec, JobSpec, ProviderSpec

_BATCH_URL = "/v1/chat/completions"
_BATCH_BODY_MOVED = ("model", "messages", "tools", "stream")


def parse_batch_jsonl(text: str, *, path: str, provider: ProviderSpec, sha256: str | None = None) -> JobSpec:
    """Turn OpenAI Batch input lines into a job: one case per line, ``custom_id`` as the case id.

    The body's ``model`` is used only when ``provider.model`` is empty (running one batch file on
    another provider is the point); ``messages`` and ``tools`` become the case, and the rest of the
    body (``temperature``, ``max_tokens``, ``stream_options``...) its params. ``stream`` is dropped:
    the dialect always streams.
    """
    cases: list[CaseSpec] = []
    seen: set[str] = set()
    models: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = Where(path=path, locations={"": number, "custom_id": number, "body": number, "url": number})
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"not valid JSON: {exc.msg}", path=path, line=number, fix="write one request per line"
            ) from exc
        if not isinstance(raw, dict):
            raise ConfigError(
                "a batch line must be a JSON object", path=path, line=number, fix="write one request per line"
            )
        case_id = raw.get("custom_id")
        if not isinstance(case_id, str) or not case_id:
            raise where.error("custom_id", "custom_id is required", "give every line a unique custom_id")
        if case_id in seen:
            raise where.error(
                "custom_id", f"duplicate custom_id {case_id!r}", "give every line a unique custom_id"
            )
        seen.add(case_id)
        if raw.get("method", "POST") != "POST" or raw.get("url") != _BATCH_URL:
            raise where.error("url", f"only POST {_BATCH_URL} can be streamed", f"use url {_BATCH_URL!r}")
        body = raw.get("body")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise where.error("body.messages", "the body needs a messages list", "add body.messages")
        messages, system = check_messages(where, body["messages"], "body.messages", None)
        tools = body.get("tools", [])
        for index, tool in enumerate(tools if isinstance(tools, list) else [None]):
            check_tool(where, tool, f"body.tools[{index}]")
        if isinstance(body.get("model"), str):
            models.add(body["model"])
        params = {k: v for k, v in body.items() if k not in _BATCH_BODY_MOVED}
        case = CaseSpec(
            id=case_id, messages=tuple(messages), system=system, tools=tuple(tools), params=params
        )
        check_translatable(where, "body", case, (provider,))
        cases.append(case)
    if not cases:
        raise ConfigError("the batch file has no requests", path=path, fix="write one request per line")
    if not provider.model:
        if len(models) != 1:
            raise ConfigError(
                f"the batch names {len(models)} models and the provider none",
                path=path,
                fix="give the provider a model",
            )
        provider = dataclasses.replace(provider, model=models.pop())
    return JobSpec(
        name=Path(path).stem,
        providers=(provider,),
        cases=tuple(cases),
        source_path=path,
        source_sha256=sha256 or hashlib.sha256(text.encode()).hexdigest(),
    )
