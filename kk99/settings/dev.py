"""Development and the embedded demo (`make run`).

DEBUG is off unless asked for (``KK99_DEBUG=1``, or ``DEBUG=1``): the demo shows the friendly
404/500 pages, and a debug page — settings, local variables — appears only on purpose.
Static files are served by WhiteNoise from the apps' static directories either way."""
import warnings

from .base import *
from .env import env_bool, env_str

DEBUG = env_bool("KK99_DEBUG", env_bool("DEBUG", False))
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# The demo serves static files from the apps (finders), not from a collectstatic output.
warnings.filterwarnings("ignore", message="No directory at", module="whitenoise.base")

# The demo's outgoing mail lands in files that /dev/mailbox/ shows (kk99.devmail), so a new
# account can open its verification link; production refuses file/console backends.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mailbox"))
