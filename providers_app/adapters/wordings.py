"""What an error message means, read from its words rather than one exact sentence.

Vendors reword their errors, and proxies in front of them (OpenRouter, LiteLLM,
one-api, nginx) re-wrap them, swap straight quotes for curly ones or drop the
error code, so a list that matches one sentence retries all the others. Every
message is first normalised (case folded, quotes, backticks, underscores and all
other punctuation turned into word breaks, whitespace collapsed), and each
wording below is normalised the same way, so ``context_length_exceeded``,
"Context length exceeded." and "context-length exceeded" are one wording. A
wording matches whole words only; ``…`` stands for up to eight words of any
kind (a model name, a token count).

``MEANINGS`` is the one table of wordings. Most are taken from real messages of
vendors, servers and proxies: the recorded cases that replay them are in
``tests/fixtures/providers/`` and ``tests/adapters/extra_fixtures/``, the latter
naming the public ``source`` where each message was seen. A few are a vendor's
error code written as words ("insufficient quota", "context length exceeded") or
a generic phrase ("too many requests").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .errors import Category

# Up to eight words between two parts of a wording: enough for a model name such
# as "meta-llama/Llama-3.3-70B-Instruct-Turbo" (seven words once normalised).
GAP = "…"
_GAP_WORDS = 8
_WORD = re.compile(r"[^\W_]+")  # letters and digits; "_" separates words too

# meaning -> the wordings that say it. Order within a meaning does not matter;
# which meaning wins when several match is decided in ``classify.py``.
MEANINGS: Mapping[Category, tuple[str, ...]] = {
    Category.QUOTA_EXHAUSTED: (
        "credit balance is too low",  # Anthropic 400
        "insufficient balance",  # DeepSeek 402
        "insufficient credits",  # OpenRouter 402, no purchase yet
        "requires more credits",  # OpenRouter 402 "...or fewer max_tokens"
        "insufficient quota",  # OpenAI's code when a proxy keeps only the text
        # Not "exceeded your current quota": Gemini says it for per-minute limits too.
    ),
    Category.CONTEXT_LENGTH: (
        "context length exceeded",  # OpenAI's code, when it is in the message
        "context window exceeded",
        "maximum context length",  # OpenAI, vLLM and servers copying OpenAI's text
        "prompt is too long",  # Anthropic
        "input length and max tokens exceed context limit",  # Anthropic
        "exceeds the maximum number of tokens allowed",  # Gemini
        "inputs tokens + max_new_tokens must be",  # Hugging Face TGI, Together
        "input length exceeds the context length",  # Ollama
        "exceeds the available context size",  # llama.cpp server
        "context size has been exceeded",  # llama.cpp server, sent as a 500
        "exceed context window",  # llama-cpp-python
    ),
    Category.CONTENT_FILTER: (
        "content management policy",  # Azure OpenAI, also re-wrapped by proxies
        "rejected as a result of our safety system",  # OpenAI
        "flagged as potentially violating our usage policy",  # OpenAI reasoning models
    ),
    Category.NOT_FOUND: (
        "no endpoints found",  # OpenRouter: no upstream serves the model or feature
        "no allowed providers",  # OpenRouter: provider restrictions exclude them all
        "no provider meets",  # OpenRouter: routing requirements
        # OpenRouter's 503 "No available model provider meets your routing
        # requirements" (openrouter.ai/docs/api/reference/errors-and-debugging):
        # a routing-configuration answer, not load.
        f"no {GAP} provider meets your routing requirements",
        "no providers",
        "not found, try pulling it first",  # Ollama, also on its OpenAI-compatible path
        f"model {GAP} does not exist",  # OpenAI, Groq, vLLM
        f"deployment {GAP} does not exist",  # Azure OpenAI
        "is not found for api version",  # Gemini
    ),
    Category.OVERLOADED: (
        "overloaded",  # Anthropic, OpenAI, Gemini, DeepSeek
        "experiencing high demand",  # Gemini 503
        "server busy",  # Ollama 503
        "no available workers",  # an OpenRouter upstream, all circuits open
    ),
    Category.RATE_LIMIT: (
        "rate limit",  # "Rate limit reached", "would exceed the rate limit", ...
        "rate limited",
        "too many requests",
    ),
}


def normalise_text(text: str) -> str:
    """Lower-case words separated by single spaces; everything else is a word break."""
    return " ".join(_WORD.findall(text.casefold()))


class Wording:
    """An error message, normalised once, asked which meanings it carries."""

    def __init__(self, message: str) -> None:
        self.text = f" {normalise_text(message)} "

    def means(self, category: Category) -> bool:
        return any(pattern.search(self.text) for pattern in _PATTERNS.get(category, ()))

    def first_meaning(self, categories: Iterable[Category]) -> Category | None:
        return next((category for category in categories if self.means(category)), None)


def _compile(wording: str) -> re.Pattern[str]:
    """`` model … does not exist `` -> `` model (?:\\S+ ){0,8}does not exist ``, padded."""
    parts = [normalise_text(part) for part in wording.split(GAP)]
    gap = rf"(?:\S+ ){{0,{_GAP_WORDS}}}"
    return re.compile(" " + gap.join(re.escape(part) + " " for part in parts if part))


_PATTERNS: dict[Category, tuple[re.Pattern[str], ...]] = {
    category: tuple(_compile(wording) for wording in wordings)
    for category, wordings in MEANINGS.items()
}
