"""Create the chain assets (native coins and USDT tokens) the exchange accepts. Idempotent:
existing rows are left as they are. ``--usdt-erc20`` / ``--usdt-trc20`` override the token
contracts (defaults: the mainnet USDT contracts)."""
from __future__ import annotations

from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction

from wallets.chains.addresses import address_validate
from wallets.chains.models import ChainAsset
from wallets.models import Asset

NATIVE = [
    # chain, symbol, name, ledger precision, chain decimals, min withdrawal, network fee
    ("ETH", "ETH", "Ether", 8, 18, "0.01", "0.001"),
    ("BTC", "BTC", "Bitcoin", 8, 8, "0.001", "0.0002"),
    ("TRX", "TRX", "TRON", 6, 6, "10", "1"),
    ("SOL", "SOL", "Solana", 9, 9, "0.05", "0.001"),
]


class Command(BaseCommand):
    help = "Create the chain assets (ETH, BTC, TRX, SOL, USDT-ERC20, USDT-TRC20) if missing."

    def add_arguments(self, parser):
        parser.add_argument("--usdt-erc20", default="0xdAC17F958D2ee523a2206206994597C13D831ec7")
        parser.add_argument("--usdt-trc20", default="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")

    @transaction.atomic
    def handle(self, *args, **options):
        created = 0
        for chain, symbol, name, precision, decimals, minimum, fee in NATIVE:
            asset, _ = Asset.objects.get_or_create(symbol=symbol, defaults={"name": name, "precision": precision})
            _, new = ChainAsset.objects.get_or_create(
                chain=chain, asset=asset, defaults={"decimals": decimals, "min_withdrawal": Decimal(minimum), "withdrawal_fee": Decimal(fee)}
            )
            created += new
        usdt, _ = Asset.objects.get_or_create(symbol="USDT", defaults={"name": "Tether USD", "precision": 6})
        for chain, contract, fee in (("ETH", options["usdt_erc20"], "5"), ("TRX", options["usdt_trc20"], "1")):
            contract = address_validate(chain=chain, address=contract)
            _, new = ChainAsset.objects.get_or_create(
                chain=chain, asset=usdt, defaults={"contract": contract, "decimals": 6, "min_withdrawal": Decimal("10"), "withdrawal_fee": Decimal(fee)}
            )
            created += new
        self.stdout.write(f"chains_setup: {created} chain asset(s) created.")
