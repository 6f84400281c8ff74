#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

Without DJANGO_SETTINGS_MODULE this uses the development settings, which carry no published
secret (a random SECRET_KEY per checkout, var/secret_key) and run with DEBUG off unless
KK99_DEBUG=1. Production sets DJANGO_SETTINGS_MODULE=kk99.settings.production, which refuses
to start on an unsafe configuration (docs/operations.md, "Fail-closed production settings")."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kk99.settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
