"""What `demo_setup` seeds and `run_demo` prints: the demo's credentials and banner.

The demo's admin password and client key are kept in ``var/demo/credentials.json``
(mode 0600, like an SSH key) so a second `make run` can print them again: the
database keeps only the key's digest, as for every client key, and the
password's hash. ``var/`` is in .gitignore and removed by `make clean`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings

from providers_app.simulator.server import DEMO_FIRST_PORT
from providers_app.simulator.traffic import TOOL_CALL_EXAMPLE

CREDENTIALS_MODE = 0o600
CURL_BODY = '{"model": "fallback", "messages": [{"role": "user", "content": "Say hello"}]}'


def demo_location_arguments(parser) -> None:
    """The options `demo_setup` and `run_demo` share: where the upstreams listen and
    where the demo's credentials are kept (both commands must agree on them)."""
    parser.add_argument(
        "--sim-port",
        type=int,
        default=DEMO_FIRST_PORT,
        help="Port of the primary upstream; the secondary and tertiary use the next two.",
    )
    parser.add_argument(
        "--credentials",
        type=Path,
        default=None,
        help="Where the demo's password and key are kept (default var/demo/credentials.json).",
    )


def credentials_path() -> Path:
    """The default place (``--credentials`` on both commands picks another)."""
    return Path(settings.BASE_DIR) / "var" / "demo" / "credentials.json"


@dataclass(frozen=True)
class DemoCredentials:
    username: str
    password: str | None  # None once the admin changed it: we no longer know it
    client_key: str
    # /metrics names providers and routes: the demo protects it as production does.
    metrics_token: str = ""


def credentials_load(path: Path | None = None) -> DemoCredentials | None:
    path = path or credentials_path()
    try:
        data = json.loads(path.read_text())
        return DemoCredentials(
            data["username"],
            data.get("password"),
            data["client_key"],
            data.get("metrics_token") or "",
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def credentials_save(credentials: DemoCredentials, path: Path | None = None) -> Path:
    """Write the file readable by its owner only, from its first byte on."""
    path = path or credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, CREDENTIALS_MODE)
    with os.fdopen(descriptor, "w") as file:
        json.dump(asdict(credentials), file)
    os.chmod(path, CREDENTIALS_MODE)  # an older file may have had other bits
    return path


def tool_call_example_save(credentials_file: Path | None = None) -> Path:
    """The demo's tool-calling request, next to the credentials, for `curl -d @file`."""
    path = (credentials_file or credentials_path()).with_name("tool-call.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(TOOL_CALL_EXAMPLE, indent=2) + "\n")
    return path


def demo_dashboard_path() -> str:
    """The dashboard on its shortest range: the demo's faults are minutes long."""
    return "/admin/providers_app/dashboard/?range=15m"


def banner(
    *,
    web: str,
    credentials: DemoCredentials | None,
    tool_call_file: Path | None = None,
    logs: Path | None = None,
) -> list[str]:
    """The block `make run` prints last, once everything is up: where everything is
    and how to call it."""
    base = f"http://{web}"
    key = credentials.client_key if credentials else "fbk_... (run `manage.py demo_setup`)"
    password = (credentials.password if credentials else None) or "(changed since; not shown)"
    username = credentials.username if credentials else "admin"
    bearer = f"-H 'Authorization: Bearer {key}'"
    token = credentials.metrics_token if credentials else ""
    metrics = (
        f"curl -s {base}/metrics -H 'Authorization: Bearer {token}'"
        if token
        else (f"{base}/metrics")
    )
    return [
        f"  Chat page    {base}/chat/   (sign in as {username})",
        f"  Admin        {base}/admin/   user {username}  password {password}",
        f"  Dashboard    {base}{demo_dashboard_path()}",
        f"  Status       curl -s {base}/api/status {bearer}   (or open it signed in)",
        f"  Metrics      {metrics}",
        f"  Client key   {key}",
        *([f"  Worker logs  {logs / 'worker.log'}, {logs / 'beat.log'}"] if logs else []),
        "",
        "  curl:",
        f"    curl -s {base}/v1/chat/completions {bearer} \\",
        "      -H 'Content-Type: application/json' \\",
        f"      -d '{CURL_BODY}'",
        *(
            [
                "  a tool call (the answer asks for get_weather in Paris):",
                f"    curl -s {base}/v1/chat/completions {bearer} \\",
                f"      -H 'Content-Type: application/json' -d @{tool_call_file}",
            ]
            if tool_call_file is not None
            else []
        ),
        "",
        "  OpenAI SDK (pip install openai):",
        "    import openai",
        f'    client = openai.OpenAI(base_url="{base}/v1", api_key="{key}")',
        '    reply = client.chat.completions.create(model="fallback",',
        '        messages=[{"role": "user", "content": "Say hello"}])',
        "    print(reply.choices[0].message.content, 'from', reply.model)",
    ]
