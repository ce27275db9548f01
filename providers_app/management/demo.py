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

from providers_app.simulator.traffic import TOOL_CALL_EXAMPLE

CREDENTIALS_MODE = 0o600
CURL_BODY = '{"model": "fallback", "messages": [{"role": "user", "content": "Say hello"}]}'


def credentials_path() -> Path:
    """The default place (``--credentials`` on both commands picks another)."""
    return Path(settings.BASE_DIR) / "var" / "demo" / "credentials.json"


@dataclass(frozen=True)
class DemoCredentials:
    username: str
    password: str | None  # None once the admin changed it: we no longer know it
    client_key: str


def credentials_load(path: Path | None = None) -> DemoCredentials | None:
    path = path or credentials_path()
    try:
        data = json.loads(path.read_text())
        return DemoCredentials(data["username"], data.get("password"), data["client_key"])
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


def banner(
    *, web: str, credentials: DemoCredentials | None, tool_call_file: Path | None = None
) -> list[str]:
    """The short block `make run` prints: where everything is and how to call it."""
    base = f"http://{web}"
    key = credentials.client_key if credentials else "fbk_... (run `manage.py demo_setup`)"
    password = (credentials.password if credentials else None) or "(changed since; not shown)"
    username = credentials.username if credentials else "admin"
    return [
        f"  Chat page    {base}/chat/",
        f"  Admin        {base}/admin/   user {username}  password {password}",
        f"  Dashboard    {base}/admin/providers_app/dashboard/",
        f"  Status       {base}/api/status",
        f"  Metrics      {base}/metrics",
        f"  Client key   {key}",
        "",
        "  curl:",
        f"    curl -s {base}/v1/chat/completions -H 'Authorization: Bearer {key}' \\",
        "      -H 'Content-Type: application/json' \\",
        f"      -d '{CURL_BODY}'",
        *(
            [
                "  a tool call (the answer asks for get_weather):",
                f"    curl -s {base}/v1/chat/completions -H 'Authorization: Bearer {key}' \\",
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
