"""Fault injection for crash tests: ``fault_point("withdrawal_after_sign")`` does nothing unless
the environment variable ``KK99_CHAINS_FAULT`` names that point. Then it raises
:class:`SimulatedCrash` — or, with ``KK99_CHAINS_FAULT_HARD=1``, kills the process on the spot
(``os._exit``), as a SIGKILL would."""
from __future__ import annotations

import os


class SimulatedCrash(BaseException):
    """Not an Exception: no ``except Exception`` on the way up may swallow it."""


def fault_point(name: str) -> None:
    armed = os.environ.get("KK99_CHAINS_FAULT", "")
    if armed and name in armed.split(","):
        if os.environ.get("KK99_CHAINS_FAULT_HARD") == "1":
            os._exit(137)
        raise SimulatedCrash(name)
