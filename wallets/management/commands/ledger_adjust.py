"""``manage.py ledger_adjust --email E --asset A --amount X --reason "…" [--staff EMAIL]``.

Goes through ``wallets.services.ledger_adjust`` and is audited like the admin action. Without
``--staff`` the machine's operator acts (audited with no actor, ``via: system``)."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from kk99.errors import KK99Error
from wallets.models import Asset
from wallets.services import SYSTEM_OPERATOR, ledger_adjust


class Command(BaseCommand):
    help = "Adjust a user's available balance (positive credits, negative debits), audited."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", required=True, help="The user whose balance changes.")
        parser.add_argument("--asset", required=True, help="Asset symbol, e.g. USDT.")
        parser.add_argument("--amount", required=True, help="Signed decimal amount, e.g. 1000 or -2.5.")
        parser.add_argument("--reason", required=True, help="Why (kept in the journal and the audit log).")
        parser.add_argument("--staff", help="Email of the staff member acting (needs wallets.adjust_balance).")
        parser.add_argument("--idempotency-key", help="Makes a re-run of the same command a no-op.")

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(email__iexact=options["email"].strip())
        except User.DoesNotExist:
            raise CommandError(f"No user with email {options['email']!r}.") from None
        try:
            asset = Asset.objects.get(symbol__iexact=options["asset"].strip())
        except Asset.DoesNotExist:
            raise CommandError(f"No asset {options['asset']!r}.") from None
        staff = SYSTEM_OPERATOR
        if options["staff"]:
            try:
                staff = User.objects.get(email__iexact=options["staff"].strip())
            except User.DoesNotExist:
                raise CommandError(f"No staff user {options['staff']!r}.") from None
        try:
            event = ledger_adjust(
                staff=staff,
                user=user,
                asset=asset,
                amount=options["amount"].strip(),
                reason=options["reason"],
                idempotency_key=options["idempotency_key"],
            )
        except KK99Error as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(f"Adjusted {user.email} {asset.symbol} by {options['amount'].strip()} (event #{event.pk}).")
