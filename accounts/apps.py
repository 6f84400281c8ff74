from django.apps import AppConfig
from django.db.models.signals import post_migrate, post_save

from accounts.sockets import user_sockets_close_on_commit


def _roles_sync_after_migrate(sender, **kwargs):
    """Re-sync the back-office roles once per ``migrate``, after the last app's
    permissions were created (so wildcard grants pick up new permissions)."""
    from django.apps import apps

    with_models = [config for config in apps.get_app_configs() if config.models_module is not None]
    if with_models and sender is with_models[-1]:
        from accounts.roles import roles_sync

        roles_sync()


def _user_saved(sender, instance, created, **kwargs):
    """A changed password or a deactivated account closes the user's open WebSockets
    (accounts.sockets) after commit, whichever path saved it (a service, the admin form,
    ``changepassword``, a script). Bulk ``update()`` sends no signal: use the services."""
    password_changed = instance.__dict__.pop("_kk99_password_changed", False)
    if created:
        return
    if not instance.is_active:
        user_sockets_close_on_commit(user_id=instance.pk, reason="deactivated")
    elif password_changed:
        user_sockets_close_on_commit(user_id=instance.pk, reason="password_changed")


class AccountsConfig(AppConfig):
    """Wiring of the accounts app: system checks, the OpenAPI auth scheme, the staff-only
    admin door and the role sync."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self) -> None:
        from django.contrib import admin

        from accounts import checks, schema  # noqa: F401  (registration side effects)
        from accounts.admin_site import install

        install(admin.site)
        post_save.connect(_user_saved, sender=self.get_model("User"), dispatch_uid="accounts.user_sockets_close")
        post_migrate.connect(_roles_sync_after_migrate, dispatch_uid="accounts.roles_sync")
