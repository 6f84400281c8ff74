"""Event-feed fixtures: a recording transport and a NATS prefix per test, beside the shared
exchange fixtures (tests/fixtures.py) with fee tiers re-read on every engine batch."""
from __future__ import annotations

import uuid

import pytest

from events.transport import Transport


@pytest.fixture(autouse=True)
def _fee_tiers_per_batch(settings):
    settings.KK99 = {**settings.KK99, "FEE_TIER_CACHE_SECONDS": 0}


class RecordingTransport(Transport):
    """Keeps what it was given; ``fail_after`` acknowledges only that many, then raises."""

    def __init__(self, fail_after: int | None = None):
        self.sent = []
        self.fail_after = fail_after

    def open(self):
        pass

    def ensure_streams(self):
        pass

    def publish(self, messages):
        from events.transport import TransportError

        for m in messages:
            if self.fail_after is not None and len(self.sent) >= self.fail_after:
                raise TransportError("injected")
            self.sent.append(m)

    def close(self):
        pass


@pytest.fixture
def recording():
    return RecordingTransport()


@pytest.fixture
def nats_prefix(settings):
    """A subject/stream prefix of this test alone; its JetStream streams are deleted after."""
    from events.transport import NatsTransport

    prefix = f"kk99t{uuid.uuid4().hex[:10]}"
    settings.KK99 = {**settings.KK99, "EVENTS": {**settings.KK99["EVENTS"], "SUBJECT_PREFIX": prefix}}
    yield prefix
    t = NatsTransport(prefix=prefix)
    try:
        t.open()
        t.delete_streams()
    finally:
        t.close()
