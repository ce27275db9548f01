#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    # Production unless told otherwise: it refuses to start without a strong
    # DJANGO_SECRET_KEY, so a forgotten variable never means DEBUG and a known
    # secret. `make run` and the tests choose fallbackproject.settings.local/test.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fallbackproject.settings.production")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
