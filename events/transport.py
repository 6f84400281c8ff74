"""Where relayed events go. :class:`Transport` is the interface the relay uses; NATS JetStream
(:class:`NatsTransport`) is the one implemented and tested. A Kafka transport would implement
the same four methods (``open``, ``ensure_streams``, ``publish``, ``close``) with
confluent-kafka's idempotent producer (``enable.idempotence=true``, one partition key per
stream) and be chosen by ``KK99["EVENTS"]["TRANSPORT"]`` — not written, not tested.

Streams per family: ``<PREFIX>_MARKET`` (subjects ``<prefix>.market.>``), ``<PREFIX>_ACCOUNT``,
``<PREFIX>_USER``. Subject of an event: ``<prefix>.<stream>``, e.g. ``kk99.market.BTCUSDT``."""
from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

from kk99.conf import kk99_setting

FAMILIES = ("market", "account", "user")


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    data: bytes
    msg_id: str  # "<stream>:<seq>": the de-duplication key (Nats-Msg-Id)


def events_setting(name: str):
    return kk99_setting("EVENTS")[name]


def subject_prefix() -> str:
    return events_setting("SUBJECT_PREFIX")


def subject_for(stream: str, prefix: str | None = None) -> str:
    return f"{prefix or subject_prefix()}.{stream}"


def stream_name(family: str, prefix: str | None = None) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{prefix or subject_prefix()}_{family}").upper()


class TransportError(Exception):
    """The transport did not acknowledge a message; nothing after it was sent."""


class Transport(ABC):
    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def ensure_streams(self) -> None: ...

    @abstractmethod
    def publish(self, messages: list[Message]) -> None:
        """Publish in order; return only when every message is acknowledged (persisted).
        Raise :class:`TransportError` at the first one that is not — the relay will send the
        same messages again, de-duplicated by ``msg_id``."""

    @abstractmethod
    def close(self) -> None: ...


class NatsTransport(Transport):
    """JetStream over nats-py, driven from synchronous code through a private event loop."""

    def __init__(self, *, url: str | None = None, prefix: str | None = None, timeout: float = 5.0) -> None:
        self.url = url or events_setting("NATS_URL")
        self.prefix = prefix or subject_prefix()
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.nc = None
        self.js = None

    def _run(self, coro):
        return self.loop.run_until_complete(coro)

    def open(self) -> None:
        import nats

        async def connect():
            nc = await nats.connect(self.url, allow_reconnect=False, connect_timeout=self.timeout, max_reconnect_attempts=0)
            return nc, nc.jetstream(timeout=self.timeout)

        self.nc, self.js = self._run(connect())

    def ensure_streams(self) -> None:
        from nats.js.api import RetentionPolicy, StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        async def ensure():
            for family in FAMILIES:
                config = StreamConfig(
                    name=stream_name(family, self.prefix),
                    subjects=[f"{self.prefix}.{family}.>"],
                    retention=RetentionPolicy.LIMITS,
                    storage=StorageType.FILE,
                    max_age=float(events_setting("MAX_AGE_SECONDS")) or None,
                    duplicate_window=float(events_setting("DUPLICATE_WINDOW_SECONDS")),
                )
                try:
                    await self.js.stream_info(config.name)
                    await self.js.update_stream(config)
                except NotFoundError:
                    await self.js.add_stream(config)

        self._run(ensure())

    def publish(self, messages: list[Message]) -> None:
        async def send():
            for m in messages:  # one at a time: a failed message is never overtaken by the next
                try:
                    await self.js.publish(m.subject, m.data, timeout=self.timeout, headers={"Nats-Msg-Id": m.msg_id})
                except Exception as exc:  # every failure means "not acknowledged"
                    raise TransportError(f"{m.msg_id}: {exc!r}") from exc

        self._run(send())

    def close(self) -> None:
        if self.nc is not None:
            try:
                self._run(self.nc.close())
            except Exception:  # the connection may already be gone
                pass
            self.nc = self.js = None

    def delete_streams(self) -> None:
        """Tests and benchmarks only: remove this prefix's streams."""
        from nats.js.errors import NotFoundError

        async def delete():
            for family in FAMILIES:
                try:
                    await self.js.delete_stream(stream_name(family, self.prefix))
                except NotFoundError:
                    pass

        self._run(delete())


def transport_build(**kwargs) -> Transport:
    kind = events_setting("TRANSPORT")
    if kind == "nats":
        return NatsTransport(**kwargs)
    raise ValueError(f"KK99['EVENTS']['TRANSPORT'] = {kind!r}: only 'nats' is implemented")
