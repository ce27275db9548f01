"""Budgets are two more kinds of the per-key limits (providers_app/limits): they
count in `LimitCounter` (or Redis), so `BudgetCounter` goes. Lost with it: the
counts of the current minute and month only."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('providers_app', '0021_limits_function'),
    ]

    operations = [
        migrations.DeleteModel(
            name='BudgetCounter',
        ),
    ]
