from django.apps import AppConfig


class EventsConfig(AppConfig):
    """The event feed: a transactional outbox (:mod:`events.outbox`), Avro schemas
    (:mod:`events.codec`), the relay to NATS JetStream (:mod:`events.relay`) and its checker
    (:mod:`events.verify`). See docs/events.md.

    The engine batch and the ledger call the outbox directly; deposits, withdrawals and user/KYC
    changes are wired here, on ``post_save`` (:mod:`events.signals`)."""

    name = "events"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from events import signals
        from wallets.chains.models import Deposit, Withdrawal

        post_save.connect(signals.deposit_saved, sender=Deposit, dispatch_uid="events.deposit")
        post_save.connect(signals.withdrawal_saved, sender=Withdrawal, dispatch_uid="events.withdrawal")
        post_save.connect(signals.user_saved, sender=get_user_model(), dispatch_uid="events.user")
