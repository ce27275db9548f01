"""Dashboard latency: total time beside time to first output, five-minute rollups.

Rows rolled up before this migration hold a whole hour under their hour's start:
hourly and daily charts still place them right; the 1 h and 6 h views draw such
an hour in its first five minutes until it ages out (seven days).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("providers_app", "0007_provider_capabilities"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="callrollup", name="call_rollup_unique"),
        migrations.RemoveIndex(model_name="callrollup", name="providers_a_hour_353271_idx"),
        migrations.RenameField(model_name="callrollup", old_name="hour", new_name="period_start"),
        migrations.AlterField(
            model_name="callrollup",
            name="period_start",
            field=models.DateTimeField(
                help_text="The start of the five-minute period (UTC).",
                verbose_name="period start",
            ),
        ),
        migrations.AlterModelOptions(
            name="callrollup", options={"ordering": ["-period_start", "provider_id"]}
        ),
        migrations.AddConstraint(
            model_name="callrollup",
            constraint=models.UniqueConstraint(
                fields=("provider", "period_start"), name="call_rollup_unique"
            ),
        ),
        migrations.AddIndex(
            model_name="callrollup",
            index=models.Index(fields=["period_start"], name="call_rollup_period_idx"),
        ),
        migrations.AlterField(
            model_name="callrollup",
            name="latency_histogram",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Answered calls per bucket of time to first output: upper bound "
                "in ms (or inf) to count.",
                verbose_name="time-to-first-output histogram",
            ),
        ),
        migrations.AddField(
            model_name="callrollup",
            name="total_histogram",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Answered calls per bucket of total time: upper bound in ms (or inf) "
                "to count.",
                verbose_name="total-time histogram",
            ),
        ),
        migrations.AlterField(
            model_name="callrollup",
            name="final",
            field=models.BooleanField(
                default=False,
                help_text="The period is over and rolled up for good; its one-second buckets "
                "are pruned.",
                verbose_name="final",
            ),
        ),
    ]
    for model in ("callbucket", "callrollup"):
        operations += [
            migrations.AlterField(
                model_name=model,
                name="latency_ms_sum",
                field=models.FloatField(
                    default=0,
                    help_text="Answered calls' time from sending the attempt to the first output "
                    "(the whole answer when not streamed), added up.",
                    verbose_name="time to first output, sum (ms)",
                ),
            ),
            migrations.AddField(
                model_name=model,
                name="total_ms_sum",
                field=models.FloatField(
                    default=0,
                    help_text="Answered calls' time from sending the attempt to the end of the "
                    "answer (the last chunk of a stream), added up.",
                    verbose_name="total time, sum (ms)",
                ),
            ),
        ]
