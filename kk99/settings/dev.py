"""Development and the embedded demo (`make run`)."""
from .base import *  # noqa: F401,F403
from .env import env_bool, env_str

DEBUG = env_bool("DEBUG", True)

# The demo's outgoing mail lands in files that /dev/mailbox/ shows (kk99.devmail), so a new
# account can open its verification link; production refuses file/console backends.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mailbox"))  # noqa: F405
