"""`manage.py chat "prompt"`: ask the providers in priority order, print who answered."""

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from providers_app.engine import fallback


class Command(BaseCommand):
    help = (
        "Send one prompt through the failover layer and print the answer, the provider that "
        "gave it and the attempts. Exits 1 when every provider failed or refused the prompt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prompt", help="The user message; '-' reads it from stdin.")
        parser.add_argument("--system", help="A system prompt to send first.")
        parser.add_argument("--stream", action="store_true", help="Print the answer as it comes.")
        parser.add_argument("--max-tokens", type=int, help="Cap the answer's length.")
        parser.add_argument("--temperature", type=float, help="Sampling temperature, 0 to 2.")

    def handle(self, *args, prompt: str, **options) -> None:
        if prompt == "-":
            prompt = sys.stdin.read()
        if not prompt.strip():
            raise CommandError("The prompt is empty.")
        messages = [{"role": "user", "content": prompt}]
        if options["system"]:
            messages.insert(0, {"role": "system", "content": options["system"]})
        kwargs = {"max_tokens": options["max_tokens"], "temperature": options["temperature"]}
        try:
            if options["stream"]:
                self._stream(messages, kwargs)
            else:
                self._complete(messages, kwargs)
        except fallback.AllProvidersFailed as error:
            reasons = "; ".join(_reason(r) for r in error.reasons) or "no provider is enabled"
            raise CommandError(
                f"All providers failed: {reasons}. Retry after {error.retry_after_s} s "
                f"(request {error.request_id})."
            ) from None
        except fallback.RequestFailed as error:
            raise CommandError(
                f"{error.provider} refused the prompt ({error.category}): {error.error.message}"
            ) from None

    def _complete(self, messages: list[dict], kwargs: dict) -> None:
        result = fallback.complete(messages, **kwargs)
        self.stdout.write(result.text)
        self._summary(result)

    def _stream(self, messages: list[dict], kwargs: dict) -> None:
        stream = fallback.stream(messages, **kwargs)
        try:
            for chunk in stream:
                self.stdout.write(chunk.text, ending="")
                self.stdout.flush()
        except fallback.StreamInterrupted as error:
            self.stdout.write("")
            raise CommandError(
                f"The answer from {error.provider} was interrupted ({error.category}); "
                "the text above is partial."
            ) from None
        finally:
            stream.close()  # a no-op unless the loop stopped early (Ctrl-C)
        self.stdout.write("")
        self._summary(stream)

    def _summary(self, outcome: "fallback.ChatCompletion | fallback.ChatStream") -> None:
        line = (
            f"-- provider: {outcome.provider} (model {outcome.model}) · "
            f"attempts: {outcome.attempts} · failovers: {outcome.failovers}"
        )
        if outcome.failures:
            line += " · failed: " + ", ".join(_reason(f) for f in outcome.failures)
        self.stdout.write(self.style.SUCCESS(line + f" · request {outcome.request_id}"))


def _reason(reason: fallback.ProviderReason) -> str:
    status = f" HTTP {reason.status_code}" if reason.status_code else ""
    return f"{reason.provider} ({reason.reason}{status})"
