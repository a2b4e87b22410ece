"""``GET /v1/models``: the model list, in OpenAI's shape, or Anthropic's when the client is Anthropic's.

Both APIs serve the list at the same path (the anthropic SDK's base URL has no /v1); the anthropic SDK
always sends ``anthropic-version``, which tells them apart. The simulator answers any model name, so
the list names the one it answers with when a request names none.
"""

from __future__ import annotations

from typing import Final

import orjson

MODEL: Final = "sim-model"
CREATED: Final = 1_700_000_000  # a fixed instant: the list is the same on every call


def models_body(*, anthropic: bool) -> bytes:
    """The JSON body of the model list."""
    if anthropic:
        model = {
            "type": "model",
            "id": MODEL,
            "display_name": "Simulated model",
            "created_at": "2023-11-14T22:13:20Z",
        }
        return orjson.dumps({"data": [model], "has_more": False, "first_id": MODEL, "last_id": MODEL})
    model_obj = {"id": MODEL, "object": "model", "created": CREATED, "owned_by": "runner-simulator"}
    return orjson.dumps({"object": "list", "data": [model_obj]})
