"""Prices per provider: edited in the admin and in `providers export/import`, validated."""

import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from providers_app.models import Provider
from tests.factories import provider_admin_form


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user(
        "staff", password="pw", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    return client


def test_admin_form_saves_prices(staff_client, db):
    response = staff_client.post(
        reverse("admin:providers_app_provider_add"),
        data=provider_admin_form(
            price_input_per_mtok="2.50",
            price_cached_input_per_mtok="1.25",
            price_output_per_mtok="10",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    provider = Provider.objects.get(name="new-one")
    assert (
        provider.price_input_per_mtok,
        provider.price_cached_input_per_mtok,
        provider.price_output_per_mtok,
    ) == (Decimal("2.5"), Decimal("1.25"), Decimal("10"))


@pytest.mark.parametrize(("value", "message"), [("-1", "greater than or equal to 0"),
                                                 ("cheap", "Enter a number")])  # fmt: skip
def test_admin_form_refuses_a_negative_or_non_numeric_price(staff_client, db, value, message):
    response = staff_client.post(
        reverse("admin:providers_app_provider_add"),
        data=provider_admin_form(price_output_per_mtok=value),
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Provider.objects.filter(name="new-one").exists()


def test_prices_round_trip_through_export_and_import(make_provider, capsys, tmp_path):
    make_provider(name="priced", price_input_per_mtok=Decimal("0.15"),
                  price_output_per_mtok=Decimal("0.6"))  # fmt: skip
    capsys.readouterr()
    call_command("providers", "export")
    exported = json.loads(capsys.readouterr().out)
    entry = exported["providers"][0]
    assert (entry["price_input_per_mtok"], entry["price_output_per_mtok"]) == (
        "0.150000",
        "0.600000",
    )
    assert entry["price_cached_input_per_mtok"] is None
    entry["price_cached_input_per_mtok"] = "0.075"
    path = tmp_path / "providers.json"
    path.write_text(json.dumps(exported))
    call_command("providers", "import", str(path))
    assert Provider.objects.get(name="priced").price_cached_input_per_mtok == Decimal("0.075")


def test_import_refuses_a_negative_price_naming_the_field(make_provider, capsys, tmp_path):
    make_provider(name="priced")
    path = tmp_path / "providers.json"
    path.write_text(json.dumps({"providers": [{"name": "priced", "price_input_per_mtok": -2}]}))
    capsys.readouterr()
    with pytest.raises(CommandError):
        call_command("providers", "import", str(path))
    assert "entry 1 (priced): price_input_per_mtok: " in capsys.readouterr().err
    assert Provider.objects.get(name="priced").price_input_per_mtok is None
