"""``python -m kk99.embedded_db start|stop|hold|url`` — see kk99/embedded_db/__init__.py."""
import os
import sys

import django

from kk99.embedded_db import main

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kk99.settings.dev")
    django.setup()
    sys.exit(main(sys.argv[1:]))
