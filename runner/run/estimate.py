"""How many tokens a request will count against its provider's TPM before it is sent (the limiter
reserves them, and corrects the reservation once the usage arrives: runner.run.limits)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from runner.spec import request_params
from runner.wire.dialects import get_dialect

if TYPE_CHECKING:
    from runner.spec import CaseSpec, ProviderSpec

# Output tokens assumed when a request sets no max_tokens: providers reserve TPM for the cap, and
# a budget that assumes too little only means a correction after the usage arrives.
DEFAULT_OUTPUT_ESTIMATE: Final = 1024


def estimate_tokens(provider: ProviderSpec, case: CaseSpec) -> int:
    """Tokens a request will count against TPM before it is sent: prompt chars / 4 + max tokens.

    The max tokens are the cap the provider's dialect puts in the request (each names it its own way).
    """
    chars = len(case.system or "")
    if case.tools:  # tool schemas are sent, and counted, as part of the prompt
        chars += len(json.dumps(list(case.tools)))
    for message in case.messages:
        chars += _content_chars(message.get("content"))
    output = get_dialect(provider.dialect).max_output_tokens(request_params(provider, case))
    return chars // 4 + (DEFAULT_OUTPUT_ESTIMATE if output is None else output)


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # content parts: count the text ones
        return sum(len(part.get("text", "")) for part in content if isinstance(part, dict))
    return 0
