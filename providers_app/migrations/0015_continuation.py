"""Continuation dialects replace the `supports_prefill` switch; routes may hold
back automatically; a `continuation_off` event kind.

`supports_prefill` becomes `continuation`, keeping each provider's behaviour:
empty stays empty (the default for the kind, base URL and model), "no" becomes
`none`, "yes" becomes `trailing_assistant` (what every adapter sent for it:
a plain final assistant message, Gemini's final model turn) except on openai
and azure_openai, which refused it before any call and now simply have `none`.

On SQLite, adding a NOT NULL column rebuilds the table, which drops its
triggers: the routing-version triggers of the provider and route tables are
created again afterwards (migrations routing_version and routes).
"""

import importlib

from django.db import migrations, models

_TRIGGER_MIGRATIONS = ("0009_routing_version", "0012_routes")
_TABLES = {"providers_app_provider", "providers_app_route"}


def _sqlite_trigger_statements() -> list[tuple[str, str]]:
    statements = []
    for name in _TRIGGER_MIGRATIONS:
        module = importlib.import_module(f"providers_app.migrations.{name}")
        statements += [
            (create, drop)
            for create, drop in module._statements("sqlite")
            if any(f" ON {table} " in create for table in _TABLES)
        ]
    return statements


def recreate_sqlite_triggers(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "sqlite":
        return  # PostgreSQL keeps triggers across ALTER TABLE
    for create, drop in _sqlite_trigger_statements():
        schema_editor.execute(drop)
        schema_editor.execute(create)


def prefill_to_continuation(apps, schema_editor) -> None:
    Provider = apps.get_model("providers_app", "Provider")
    Provider.objects.filter(supports_prefill=False).update(continuation="none")
    Provider.objects.filter(supports_prefill=True).exclude(
        kind__in=("openai", "azure_openai")
    ).update(continuation="trailing_assistant")


def continuation_to_prefill(apps, schema_editor) -> None:
    Provider = apps.get_model("providers_app", "Provider")
    Provider.objects.filter(continuation="none").update(supports_prefill=False)
    Provider.objects.exclude(continuation__in=("", "none")).update(supports_prefill=True)


class Migration(migrations.Migration):
    dependencies = [
        ("providers_app", "0014_h21_one_order_per_route"),
    ]

    operations = [
        migrations.AddField(
            model_name="provider",
            name="continuation",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "Default for the kind, base URL and model"),
                    ("none", "None: starts a new answer (OpenAI, Azure)"),
                    (
                        "trailing_assistant",
                        "Trailing assistant message (Anthropic, Gemini, Groq, OpenRouter, "
                        "llama.cpp)",
                    ),
                    ("vllm", "vLLM: continue_final_message"),
                    ("prefix", "Mistral / DeepSeek: prefix: true"),
                ],
                default="",
                help_text="How this server continues a cut answer (the mid-stream rescue): "
                'docs/vendors.md, "Continuing a partial answer". Set to none automatically '
                "when the provider refuses a continuation (an event says so).",
                max_length=32,
                verbose_name="continues a partial answer",
            ),
        ),
        migrations.RunPython(prefill_to_continuation, continuation_to_prefill),
        migrations.RemoveField(model_name="provider", name="supports_prefill"),
        migrations.AddField(
            model_name="route",
            name="auto_hold_back",
            field=models.BooleanField(
                default=False,
                help_text="Hold back a provider's stream only when no provider behind it on "
                "this route can continue a cut answer; stream live otherwise (docs/engine.md, "
                "Automatic hold-back: the first token then comes at the end of the answer).",
                verbose_name="hold back when nobody can continue",
            ),
        ),
        migrations.AlterField(
            model_name="failoverevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("failover", "Failover"),
                    ("breaker_opened", "Breaker opened"),
                    ("breaker_half_open", "Breaker half-open"),
                    ("breaker_closed", "Breaker closed"),
                    ("all_failed", "All providers failed"),
                    ("health_failed", "Health check failed"),
                    ("health_recovered", "Health check recovered"),
                    ("manual", "Manual change"),
                    ("continuation", "Answer continued on another provider"),
                    ("continuation_off", "Continuation switched off after a refusal"),
                ],
                max_length=32,
                verbose_name="kind",
            ),
        ),
        migrations.RunPython(recreate_sqlite_triggers, migrations.RunPython.noop),
    ]
