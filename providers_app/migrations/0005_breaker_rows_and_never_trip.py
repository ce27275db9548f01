"""Every provider gets its breaker row; the never-trip state and its manual
reason are called `never_trip` instead of the ambiguous `disabled`/`disable`."""

from django.db import migrations, models

# (old, new) values of BreakerState.state and of manual FailoverEvent reasons.
STATE_RENAME = ("disabled", "never_trip")
MANUAL_REASON_RENAME = ("disable", "never_trip")


def _rename(apps, state: tuple[str, str], reason: tuple[str, str]) -> None:
    BreakerState = apps.get_model("providers_app", "BreakerState")
    FailoverEvent = apps.get_model("providers_app", "FailoverEvent")
    BreakerState.objects.filter(state=state[0]).update(state=state[1])
    FailoverEvent.objects.filter(kind="manual", reason=reason[0]).update(reason=reason[1])


def forwards(apps, schema_editor):
    Provider = apps.get_model("providers_app", "Provider")
    BreakerState = apps.get_model("providers_app", "BreakerState")
    missing = Provider.objects.filter(breaker__isnull=True).values_list("pk", flat=True)
    BreakerState.objects.bulk_create(
        [BreakerState(provider_id=pk) for pk in missing], ignore_conflicts=True
    )
    _rename(apps, STATE_RENAME, MANUAL_REASON_RENAME)


def backwards(apps, schema_editor):
    # The breaker rows stay: a closed breaker is what a missing row meant.
    _rename(apps, STATE_RENAME[::-1], MANUAL_REASON_RENAME[::-1])


class Migration(migrations.Migration):
    dependencies = [
        ("providers_app", "0004_counter_labels"),
    ]

    operations = [
        migrations.AlterField(
            model_name="breakerstate",
            name="state",
            field=models.CharField(
                choices=[
                    ("closed", "Closed"),
                    ("open", "Open"),
                    ("half_open", "Half-open"),
                    ("forced_open", "Forced open"),
                    ("never_trip", "Never trips"),
                ],
                default="closed",
                max_length=16,
                verbose_name="state",
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
