from django.apps import AppConfig


class EventsConfig(AppConfig):
    """The event feed: a transactional outbox (:mod:`events.outbox`), Avro schemas
    (:mod:`events.codec`), the relay to NATS JetStream (:mod:`events.relay`) and its checker
    (:mod:`events.verify`). See docs/events.md."""

    name = "events"
    default_auto_field = "django.db.models.BigAutoField"
