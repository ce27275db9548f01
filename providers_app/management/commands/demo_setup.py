"""`manage.py demo_setup`: the demo's admin, client key, simulated providers (and routes).

First run: creates each and prints the admin password and the key. Later runs
reuse them and say so; the credentials file under var/ (mode 0600) is what lets
them be printed again, since the database keeps only digests. Nothing here
overwrites what an admin changed: a changed password is not reset, a revoked
demo key is replaced by a new one (and that is said), providers that exist are
kept (only the demo upstreams' ports follow --sim-port).
"""

import secrets
from decimal import Decimal
from pathlib import Path

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from providers_app.management.demo import (
    DemoCredentials,
    credentials_load,
    credentials_save,
    demo_location_arguments,
    tool_call_example_save,
)
from providers_app.models import ClientKey, Provider
from providers_app.services.client_keys import (
    ClientKeyRefused,
    client_key_authenticate,
    client_key_create,
)
from providers_app.simulator.server import demo_specs

DEMO_KEY_NAME = "demo"
# With routes (issue 14): the default route keeps `model: "fallback"` working;
# a second one answers from the secondary first, sharing its breaker.
DEMO_ROUTES = (
    ("chat", ("primary", "secondary", "tertiary"), True),
    ("chat-fast", ("secondary", "tertiary"), False),
)
# Prices ($ per million tokens: input, cached input, output) in the shape of real
# price lists, the fallbacks dearer than the primary, so that the "Usage and
# cost" page shows a failover cost after an outage of the primary.
DEMO_PRICES = {
    "primary": ("0.15", "0.075", "0.60"),
    "secondary": ("2.50", "1.25", "10.00"),
    "tertiary": ("3.00", None, "15.00"),
}


class Command(BaseCommand):
    help = "Create the demo admin, client key and simulated providers, or reuse them."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        demo_location_arguments(parser)

    def handle(self, *args, username: str, sim_port: int, credentials: Path | None, **options):
        stored = credentials_load(credentials)
        with transaction.atomic():
            password = self._admin(username, stored)
            key = self._client_key(stored)
            self._providers(sim_port)
            self._routes()
        metrics_token = (stored.metrics_token if stored else "") or secrets.token_urlsafe(24)
        path = credentials_save(
            DemoCredentials(username, password, key, metrics_token), credentials
        )
        tool_call_example_save(path)
        self.stdout.write(f"Demo credentials kept in {path} (mode 0600, not in the database).")

    # -- the admin ------------------------------------------------------------

    def _admin(self, username: str, stored: DemoCredentials | None) -> str | None:
        user = get_user_model().objects.filter(username=username).first()
        known = stored.password if stored and stored.username == username else None
        if user is not None and known and user.check_password(known):
            self.stdout.write(f"Reusing the admin {username!r} from an earlier run.")
            return known
        if user is not None and stored is not None and stored.username == username:
            self.stdout.write(
                f"The admin {username!r} changed its password since the first run: kept, "
                f"not shown (`manage.py changepassword {username}` sets a new one)."
            )
            return None
        password = secrets.token_urlsafe(12)
        if user is None:
            user = get_user_model()(username=username)
            verb = "Created"
        else:
            verb = "Reset the password of"
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        self.stdout.write(self.style.SUCCESS(f"{verb} the admin {username!r}: password {password}"))
        return password

    # -- the client key ---------------------------------------------------------

    def _client_key(self, stored: DemoCredentials | None) -> str:
        if stored is not None:
            try:
                client_key_authenticate(raw_key=stored.client_key)
            except ClientKeyRefused as refused:
                self.stdout.write(
                    f"The stored demo key is {refused.problem.value}: making a new one."
                )
            else:
                self.stdout.write(f"Reusing the client key {stored.client_key[:12]}...")
                return stored.client_key
        name = DEMO_KEY_NAME
        if ClientKey.objects.filter(name=name).exists():
            # Its raw key is lost (the file is gone): a new key needs a new name.
            name = f"{DEMO_KEY_NAME}-{secrets.token_hex(3)}"
        created = client_key_create(name=name)
        self.stdout.write(self.style.SUCCESS(f"Created the client key {name!r}: {created.raw_key}"))
        return created.raw_key

    # -- providers and routes -------------------------------------------------

    def _providers(self, sim_port: int) -> None:
        specs = demo_specs(sim_port)
        if not Provider.objects.exists():
            for spec in specs:  # added in order: the implicit route's, until routes exist
                Provider.objects.create(
                    name=spec.name,
                    kind=Provider.Kind.SIMULATED,
                    base_url=_base_url(spec),
                    model=f"sim-{spec.name}",
                    timeout_s=10,
                    **_prices(spec.name),
                )
            self.stdout.write(f"Seeded {len(specs)} simulated providers.")
            return
        moved = 0
        for spec in specs:
            moved += (
                Provider.objects.filter(name=spec.name, kind=Provider.Kind.SIMULATED)
                .exclude(base_url=_base_url(spec))
                .update(base_url=_base_url(spec))
            )
        note = f"; {moved} demo upstream(s) moved to port {sim_port}+" if moved else ""
        self.stdout.write(f"Reusing the {Provider.objects.count()} existing providers{note}.")

    def _routes(self) -> None:
        route_model = _route_model()
        if route_model is None:
            return  # before named routes exist: one global order
        membership = _membership(route_model)
        if membership is None:
            self.stdout.write("Routes not seeded: no model links a route to its providers.")
            return
        providers = {p.name: p for p in Provider.objects.filter(kind=Provider.Kind.SIMULATED)}
        default = route_model.objects.filter(is_default=True).first()
        seeded = []
        for name, members, is_default in DEMO_ROUTES:
            chain = [providers[m] for m in members if m in providers]
            route = route_model.objects.filter(name=name).first()
            if is_default and default is not None:
                route = default  # the migration's default route: fill it if it is empty
                if membership.count(route):
                    continue
            elif route is not None or not chain:
                continue
            else:
                route = route_model.objects.create(name=name, is_default=is_default)
            membership.add(route, chain)
            seeded.append(route.name)
        if seeded:
            self.stdout.write(f"Seeded the routes {', '.join(seeded)}.")


def _route_model():
    try:
        return apps.get_model("providers_app", "Route")
    except LookupError:
        return None


def _base_url(spec) -> str:
    return f"http://{spec.host}:{spec.port}/v1"


class _Membership:
    """The model linking a route to its ordered providers, whatever it is named.

    Written before the Route model landed: it finds the model with a foreign key
    to each and uses its first integer field (position, priority) for the order.
    """

    ORDER_TYPES = frozenset(
        {"PositiveIntegerField", "PositiveSmallIntegerField", "IntegerField", "SmallIntegerField"}
    )

    def __init__(self, model, route_field: str, provider_field: str, order_field: str) -> None:
        self.model = model
        self.route_field, self.provider_field, self.order_field = (
            route_field,
            provider_field,
            order_field,
        )

    def count(self, route) -> int:
        return self.model.objects.filter(**{self.route_field: route}).count()

    def add(self, route, providers: list) -> None:
        for position, provider in enumerate(providers, start=1):
            self.model.objects.create(
                **{self.route_field: route, self.provider_field: provider},
                **{self.order_field: position},
            )


def _membership(route_model) -> _Membership | None:
    for model in apps.get_app_config("providers_app").get_models():
        relations = {f.related_model: f.name for f in model._meta.fields if f.is_relation}
        orders = [
            f.name for f in model._meta.fields if f.get_internal_type() in _Membership.ORDER_TYPES
        ]
        if route_model in relations and Provider in relations and orders:
            return _Membership(model, relations[route_model], relations[Provider], orders[0])
    return None


def _prices(name: str) -> dict:
    prices = DEMO_PRICES.get(name)
    if prices is None:
        return {}
    fields = ("price_input_per_mtok", "price_cached_input_per_mtok", "price_output_per_mtok")
    return {field: Decimal(value) for field, value in zip(fields, prices, strict=True) if value}
