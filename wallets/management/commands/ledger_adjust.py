"""Staff balance adjustments from the command line — two people, like the admin.

Request (nothing moves yet)::

    manage.py ledger_adjust --staff REQUESTER --email USER --asset USDT --amount -2.5 --reason "…"

Approve or reject (a different staff member; the approval posts the journal event)::

    manage.py ledger_adjust --staff APPROVER --approve 17
    manage.py ledger_adjust --staff APPROVER --reject 17 --reason "…"

    manage.py ledger_adjust --list          # pending requests

Everything goes through ``wallets.services`` (``adjustment_request`` / ``adjustment_approve`` /
``adjustment_reject``) and is audited like the admin. There is no operator mode: ``--staff``
is required, and the services check that person's permissions."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from kk99.errors import KK99Error
from wallets.models import AdjustmentRequest, AdjustmentStatus, Asset
from wallets.services import adjustment_approve, adjustment_reject, adjustment_request


class Command(BaseCommand):
    help = "Request a staff balance adjustment, or approve/reject one (a second staff member)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--staff", help="Email of the staff member acting (required, except for --list).")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--approve", type=int, metavar="ID", help="Approve (and apply) adjustment request ID.")
        action.add_argument("--reject", type=int, metavar="ID", help="Reject adjustment request ID.")
        action.add_argument("--list", action="store_true", help="List pending adjustment requests.")
        parser.add_argument("--email", help="The user whose balance changes (request).")
        parser.add_argument("--asset", help="Asset symbol, e.g. USDT (request).")
        parser.add_argument("--amount", help="Signed decimal amount, e.g. 1000 or -2.5 (request).")
        parser.add_argument("--reason", help="Why (request: required; reject: optional).")
        parser.add_argument("--idempotency-key", help="Makes a re-run of the same request return the same request.")

    def handle(self, *args, **options) -> None:
        if options["list"]:
            return self._list()
        staff = self._user(options["staff"], what="staff user", flag="--staff")
        try:
            if options["approve"] is not None:
                adjustment = adjustment_approve(adjustment_id=options["approve"], staff=staff)
                self.stdout.write(
                    f"Approved adjustment #{adjustment.pk}: {adjustment.user.email} {adjustment.asset.symbol} "
                    f"{adjustment.amount:+} (event #{adjustment.journal_event_id})."
                )
                return None
            if options["reject"] is not None:
                adjustment = adjustment_reject(adjustment_id=options["reject"], staff=staff, reason=options["reason"] or "")
                self.stdout.write(f"Rejected adjustment #{adjustment.pk}.")
                return None
            for flag in ("email", "asset", "amount", "reason"):
                if not options[flag]:
                    raise CommandError(f"A request needs --{flag}.")
            user = self._user(options["email"], what="user", flag="--email")
            asset = Asset.objects.filter(symbol__iexact=options["asset"].strip()).first()
            if asset is None:
                raise CommandError(f"No asset {options['asset']!r}.")
            adjustment = adjustment_request(
                staff=staff,
                user=user,
                asset=asset,
                amount=options["amount"].strip(),
                reason=options["reason"],
                request_key=options["idempotency_key"],
            )
        except KK99Error as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(
            f"Requested adjustment #{adjustment.pk}: {user.email} {asset.symbol} {adjustment.amount:+} "
            f"({adjustment.status}; another staff member approves with --approve {adjustment.pk})."
        )
        return None

    def _user(self, email: str | None, *, what: str, flag: str):
        if not email:
            raise CommandError(f"{flag} is required.")
        User = get_user_model()
        try:
            return User.objects.get(email__iexact=email.strip())
        except User.DoesNotExist:
            raise CommandError(f"No {what} {email!r}.") from None

    def _list(self) -> None:
        pending = AdjustmentRequest.objects.filter(status=AdjustmentStatus.PENDING).select_related("user", "asset", "requested_by")
        for a in pending.order_by("id"):
            self.stdout.write(f"#{a.pk} {a.user.email} {a.asset.symbol} {a.amount:+} by {a.requested_by.email}: {a.reason}")
