from django.apps import AppConfig


class ChainsConfig(AppConfig):
    """Deposits, withdrawals, chain adapters, Vault secrets and the KK99 token."""

    name = "wallets.chains"
    label = "chains"
    verbose_name = "Chains: deposits and withdrawals"
    default_auto_field = "django.db.models.BigAutoField"
