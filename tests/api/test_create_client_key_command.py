"""`manage.py create_client_key NAME`: printed once, stored hashed, usable at once."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from providers_app.models import ClientKey
from providers_app.services.client_keys import client_key_digest


def test_prints_the_key_once_and_stores_only_its_digest(client, db, capsys):
    call_command("create_client_key", "support-bot")
    out, err = capsys.readouterr()

    raw_key = out.strip()
    key = ClientKey.objects.get(name="support-bot")
    assert raw_key.startswith("fbk_")
    assert key.key_hash == client_key_digest(raw_key)
    assert raw_key not in {key.key_hash, key.prefix}
    assert key.prefix in err
    assert "cannot be shown again" in err
    response = client.get("/v1/models", headers={"Authorization": f"Bearer {raw_key}"})
    assert response.status_code == 200


def test_a_duplicate_name_is_a_clear_error(db):
    call_command("create_client_key", "bot")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_client_key", "bot")
    assert ClientKey.objects.count() == 1
