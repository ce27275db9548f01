"""`manage.py chat "prompt"`: ask the providers in a route's order (`--route`, else the
default route), print who answered."""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from providers_app.adapters.schema import ResponseFormat, Tool
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
        parser.add_argument(
            "--tools",
            type=Path,
            help="A JSON file with OpenAI function tools; tool calls are printed, not run.",
        )
        parser.add_argument("--json", action="store_true", help="Ask for a JSON object answer.")
        parser.add_argument(
            "--route",
            help="The route to use, as a client's `model` names it (default: the default route).",
        )

    def handle(self, *args, prompt: str, **options) -> None:
        if prompt == "-":
            prompt = sys.stdin.read()
        if not prompt.strip():
            raise CommandError("The prompt is empty.")
        messages = [{"role": "user", "content": prompt}]
        if options["system"]:
            messages.insert(0, {"role": "system", "content": options["system"]})
        kwargs = {
            "max_tokens": options["max_tokens"],
            "temperature": options["temperature"],
            "tools": _tools(options["tools"]) if options["tools"] else (),
            "response_format": ResponseFormat("json_object") if options["json"] else None,
            "model": options["route"],  # a route's name, as a client's `model`
        }
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
        except (fallback.CapabilityMissing, fallback.RouteNotFound) as error:
            raise CommandError(str(error)) from None
        except fallback.RequestFailed as error:
            raise CommandError(
                f"{error.provider} refused the prompt ({error.category}): {error.error.message}"
            ) from None

    def _complete(self, messages: list[dict], kwargs: dict) -> None:
        result = fallback.complete(messages, **kwargs)
        if result.text:
            self.stdout.write(result.text)
        for call in result.tool_calls:
            self.stdout.write(_tool_line(call.name, call.arguments, call.id))
        self._summary(result)

    def _stream(self, messages: list[dict], kwargs: dict) -> None:
        stream = fallback.stream(messages, **kwargs)
        calls: dict[int, list[str]] = {}  # index -> [id, name, arguments so far]
        try:
            for chunk in stream:
                self.stdout.write(chunk.text, ending="")
                self.stdout.flush()
                for piece in chunk.tool_calls:
                    call = calls.setdefault(piece.index, [piece.id or "", piece.name or "", ""])
                    call[2] += piece.arguments
        except fallback.StreamInterrupted as error:
            self.stdout.write("")
            raise CommandError(
                f"The answer from {error.provider} was interrupted ({error.category}); "
                "the text above is partial."
            ) from None
        finally:
            stream.close()  # a no-op unless the loop stopped early (Ctrl-C)
        self.stdout.write("")
        for call_id, name, arguments in calls.values():
            self.stdout.write(_tool_line(name, arguments, call_id))
        self._summary(stream)

    def _summary(self, outcome: "fallback.ChatCompletion | fallback.ChatStream") -> None:
        line = (
            f"-- route: {outcome.route} · provider: {outcome.provider} (model {outcome.model}) · "
            f"attempts: {outcome.attempts} · failovers: {outcome.failovers}"
        )
        if outcome.failures:
            line += " · failed: " + ", ".join(_reason(f) for f in outcome.failures)
        continued_from = getattr(outcome, "continued_from", None)
        if continued_from:  # a mid-stream rescue: another provider finished the answer
            line += f" · finished by {outcome.finished_by} (continued from "
            line += ", ".join(continued_from) + ")"
        self.stdout.write(self.style.SUCCESS(line + f" · request {outcome.request_id}"))


def _tools(path: Path) -> tuple[Tool, ...]:
    """OpenAI function tools from a JSON file (a list, or {"tools": [...]})."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CommandError(f"Cannot read tools from {path}: {error}") from None
    entries = data.get("tools") if isinstance(data, dict) else data
    tools = []
    for i, entry in enumerate(entries if isinstance(entries, list) else [None]):
        function = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise CommandError(f"{path}: tools[{i}] is not a function tool with a name.")
        tools.append(
            Tool(function["name"], function.get("description"), function.get("parameters"))
        )
    return tuple(tools)


def _tool_line(name: str, arguments: str, call_id: str) -> str:
    """A tool call, readable: the name, its arguments pretty-printed, and its id."""
    try:
        shown = json.dumps(json.loads(arguments or "{}"), ensure_ascii=False)
    except ValueError:
        shown = arguments
    return f"-> tool call: {name}({shown})  [id {call_id}]"


def _reason(reason: fallback.ProviderReason) -> str:
    status = f" HTTP {reason.status_code}" if reason.status_code else ""
    return f"{reason.provider} ({reason.reason}{status})"
