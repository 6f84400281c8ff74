"""What an error report may show: the exception reporter filter of every environment.

Django's own ``SafeExceptionReporterFilter`` honours ``@sensitive_variables`` and
``@sensitive_post_parameters`` only when ``DEBUG`` is off: with ``DEBUG`` on (a demo, a
developer's machine reachable by others, a misconfigured server) the technical 500 page shows
every local variable of every frame — a withdrawal that failed while signing showed the
hot-wallet private key to the user who requested it. This filter is always active, so the
marked code paths (signing, withdrawals, logins, API secrets) are cleansed in debug pages and
in error logs alike, and it hides settings whose names say they carry credentials
(URLs embed passwords: ``DATABASE_URL``, ``REDIS_URL``, the chain RPC URLs).

``@sensitive_variables`` applies its list of names to the marked function and the frames it
calls, down to the next marked function — so library code below a marked frame (Django's own
``authenticate`` → the backend → the hasher) can still hold a password under another list. As
a second line, a local whose *name* says it is a credential is hidden in every frame."""
from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter


class KK99ExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|DSN|MNEMONIC|PRIVATE|SEED", flags=re.IGNORECASE
    )

    sensitive_local_names = re.compile(
        "pass|secret|private|mnemonic|seed|token|otp|signature|credential|api_key|fernet|signing_key", flags=re.IGNORECASE
    )

    def is_active(self, request) -> bool:
        return True

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, self.cleansed_substitute if self.sensitive_local_names.search(name) else value) for name, value in variables]
