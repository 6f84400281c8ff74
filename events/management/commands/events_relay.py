"""``python manage.py events_relay``: publish the outbox to the event transport, forever.

Supervise it like ``run_engine`` (systemd ``Restart=always`` / a process manager). It may be
SIGKILLed at any point: the cursor only moves after the transport acknowledged, and the
transport drops re-sent copies by message id. One relay per cursor name: a session advisory
lock makes a second one wait (hot standby)."""
from __future__ import annotations

import time
import zlib

from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection

from events.relay import relay_run
from events.transport import TransportError, events_setting, transport_build

ADVISORY_CLASS = 0x4B45  # "KE": events relay


class Command(BaseCommand):
    help = "Relay the transactional outbox to NATS JetStream (docs/events.md)."

    def add_arguments(self, parser):
        parser.add_argument("--name", default="default", help="Cursor name (one relay per name).")
        parser.add_argument("--once", action="store_true", help="Relay until caught up, then exit.")
        parser.add_argument("--batch", type=int, default=None)

    def handle(self, *args, name, once, batch, **opts):
        limit = batch or events_setting("RELAY_BATCH_SIZE")
        key = zlib.crc32(name.encode()) % (2**31)  # stable across processes (hash() is salted)
        with connection.cursor() as cursor:
            while True:
                cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_CLASS, key])
                if cursor.fetchone()[0]:
                    break
                time.sleep(1.0)  # another relay owns this cursor
        while True:
            transport = transport_build()
            try:
                transport.open()
                transport.ensure_streams()
                total = relay_run(transport, name=name, limit=limit, stop_when_idle=once,
                                  poll=events_setting("RELAY_POLL_SECONDS"))
                self.stdout.write(f"relayed {total} events")
                return
            except TransportError as exc:
                self.stderr.write(f"transport failed, reconnecting: {exc}")
                time.sleep(0.5)
            except DatabaseError:
                raise  # the supervisor restarts us with a fresh connection
            except Exception as exc:  # NATS unreachable (connect / stream setup)
                self.stderr.write(f"transport unreachable, retrying: {exc!r}")
                time.sleep(0.5)
            finally:
                transport.close()
