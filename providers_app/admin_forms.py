"""The provider's admin form: refuses to save over a change made after it was opened.

An operator action (disable, enable), an import or another admin may change a
provider while its page is open in a tab. Saving that tab would silently write
its stale values back ("a stale form undoes an operator action"). The form
carries the provider's `updated_at` from when the page was rendered (every write
to a provider bumps it) and `clean()` compares it with the row, locked for the
rest of the admin's save transaction, so a save over a newer change is refused
with a message instead.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.db import transaction

from .models import Provider
from .selectors import CAPABILITY_FIELDS

STALE_FORM_MESSAGE = (
    "This provider was changed by someone else (or by an operator action) after you "
    "opened this page, so nothing was saved. Reload the page to see the current values, "
    "then make your change again."
)


def provider_version(updated_at) -> str:
    return updated_at.isoformat() if updated_at else ""


class CapabilitySelect(forms.NullBooleanSelect):
    """Empty reads as "the default", not Django's "Unknown"."""

    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.choices = [
            ("unknown", "Default for the kind and model"),
            ("true", "Yes"),
            ("false", "No"),
        ]


class ProviderAdminForm(forms.ModelForm):
    version = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Provider
        fields = "__all__"  # noqa: DJ007  (the admin narrows it to its fieldsets)
        widgets = dict.fromkeys(CAPABILITY_FIELDS, CapabilitySelect)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["version"].initial = provider_version(self.instance.updated_at)

    def clean(self):
        data = super().clean()
        if self.instance.pk is None:
            return data
        rows = Provider.objects.filter(pk=self.instance.pk)
        if transaction.get_connection().in_atomic_block:
            rows = rows.select_for_update()  # held until the admin's save commits
        current = rows.values_list("updated_at", flat=True).first()
        if data.get("version") != provider_version(current):
            raise ValidationError(STALE_FORM_MESSAGE, code="stale")
        return data
