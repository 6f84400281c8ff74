"""Seed a demo exchange: markets (when trading is installed), demo users with funds, a staff
user. Idempotent: running it twice changes nothing the second time (funding uses
idempotency keys)."""
from __future__ import annotations

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import BaseCommand, call_command, get_commands
from django.db import transaction
from django.utils import timezone

from kk99.conf import kk99_setting
from risk.models import RiskLimit

DEMO_PASSWORD = "kk99-demo-pass"  # printed by `demo_banner`; demo only
STAFF_EMAIL = "staff@kk99.local"
FINANCE_EMAIL = "finance@kk99.local"  # the second person of the two-person KK99 issuance
DEMO_USERS = {
    "alice@kk99.local": {"USDT": "100000", "BTC": "2", "ETH": "20", "SOL": "500", "TRX": "100000", "KK99": "50000", "USD": "100000", "AAPL": "200"},
    "bob@kk99.local": {"USDT": "100000", "BTC": "2", "ETH": "20", "SOL": "500", "TRX": "100000", "KK99": "50000", "USD": "100000", "AAPL": "200"},
    "taker@kk99.local": {"USDT": "1000000", "BTC": "20", "ETH": "200", "SOL": "5000", "TRX": "2000000", "KK99": "500000", "USD": "1000000", "AAPL": "2000"},
    "maker@kk99.local": {"USDT": "5000000", "BTC": "100", "ETH": "1000", "SOL": "20000", "TRX": "10000000", "KK99": "5000000", "USD": "5000000", "AAPL": "10000"},
}
DEMO_BOTS = ("maker@kk99.local", "taker@kk99.local")  # demo_bot's market maker and taker


class Command(BaseCommand):
    help = "Seed the demo exchange (idempotent)."

    def handle(self, *args, **options):
        verbosity = options.get("verbosity", 1)
        for command in ("chains_setup", "seed_markets"):
            if command in get_commands():
                call_command(command, verbosity=verbosity)
        with transaction.atomic():
            staff = self._user(STAFF_EMAIL, staff=True, superuser=True)
            finance = self._user(FINANCE_EMAIL, staff=True, superuser=False)
            for user, role in ((staff, "admin"), (finance, "finance")):
                group = Group.objects.filter(name=role).first()
                if group is not None:
                    user.groups.add(group)
            for email in DEMO_USERS:
                self._user(email, staff=False)
            self._market_maker_limits()
        self._fund(staff, finance)
        self.stdout.write(self.style.SUCCESS("Demo exchange seeded."))

    @staticmethod
    def _market_maker_limits() -> None:
        """The demo's market maker re-quotes ladders on every market: like a real exchange's
        market-maker programme it gets order-rate and open-order limits above the retail
        defaults (risk.models.RiskLimit; every other pre-trade control still applies)."""
        for bot in get_user_model().objects.filter(email__in=DEMO_BOTS):
            RiskLimit.objects.update_or_create(
                user=bot, market=None,
                defaults={"orders_per_10s": 10_000, "orders_per_day": 10_000_000, "max_open_orders_per_market": 2_000, "max_open_orders": 20_000},
            )

    def _user(self, email: str, *, staff: bool, superuser: bool = False):
        User = get_user_model()
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email=email, password=DEMO_PASSWORD)
        user.email_verified_at = user.email_verified_at or timezone.now()
        user.kyc_tier = max(user.kyc_tier, 2)
        if staff:
            user.is_staff = True
            user.is_superuser = superuser
        user.save()
        return user

    def _fund(self, staff, finance) -> None:
        from wallets.models import Asset

        try:
            from wallets.services import ledger_credit
        except ImportError:  # ledger not installed yet
            return
        from wallets.errors import DuplicateLedgerEvent

        # Demo money is seeded supply (ISSUANCE), not a staff adjustment: adjustments need two
        # people and are capped, and the demo's market maker holds far more than any cap.
        User = get_user_model()
        for email, amounts in DEMO_USERS.items():
            user = User.objects.get(email=email)
            for symbol, amount in amounts.items():
                asset = Asset.objects.filter(symbol=symbol).first()
                if asset is None:
                    continue
                if symbol == kk99_setting("TOKEN_SYMBOL"):
                    self._issue_token(staff=staff, finance=finance, holder=user, amount=Decimal(amount))
                    continue
                try:
                    ledger_credit(
                        user=user,
                        asset=asset,
                        amount=Decimal(amount),
                        kind="issuance",
                        counter="issuance",
                        memo="Demo funding",
                        idempotency_key=f"demo-seed:{email}:{symbol}",
                    )
                except DuplicateLedgerEvent:
                    pass

    def _issue_token(self, *, staff, finance, holder, amount: Decimal) -> None:
        """KK99 exists only by two-person issuance (ledger_audit checks the supply), so the
        demo issues it the same way: staff requests, finance approves."""
        try:
            from wallets.chains.models import TokenSupplyKind, TokenSupplyRequest, TokenSupplyStatus
            from wallets.chains.token import token_supply_approve, token_supply_request
        except ImportError:
            return
        reason = "Demo funding"
        already = TokenSupplyRequest.objects.filter(
            holder=holder, kind=TokenSupplyKind.ISSUE, reason=reason, status=TokenSupplyStatus.APPROVED
        ).exists()
        if already:
            return
        supply = token_supply_request(staff=staff, kind=TokenSupplyKind.ISSUE, amount=amount, holder=holder, reason=reason)
        token_supply_approve(request_id=supply.pk, staff=finance)
