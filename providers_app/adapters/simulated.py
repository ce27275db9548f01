"""The adapter for the local upstream simulator used by the demo and the tests.

The simulator speaks the OpenAI wire format (``providers_app/simulator``), so
this is the OpenAI adapter pointed at ``http://127.0.0.1:<port>/v1`` with no key
required. It goes through exactly the same parsing and classification as a real
provider, which is what makes the demo's faults meaningful.
"""

from __future__ import annotations

from .openai import OpenAIAdapter


class SimulatedAdapter(OpenAIAdapter):
    kind = "simulated"
    requires_api_key = False
    continues_prefill = True  # the simulator speaks every continuation dialect
