"""Shared fixtures and the service-bound markers.

``@pytest.mark.postgres`` tests run only on PostgreSQL (``make test`` points DATABASE_URL at
it when it answers) and are skipped — and reported as skipped — on SQLite.
``@pytest.mark.redis`` likewise needs REDIS_URL."""
from __future__ import annotations

import os

import pytest
from django.conf import settings

# The exchange's shared fixtures (a market, funded traders, an engine) for every folder.
pytest_plugins = ["tests.fixtures"]


def pytest_collection_modifyitems(config, items):
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith(("postgresql", "kk99.embedded_db"))
    has_redis = bool(os.environ.get("REDIS_URL"))
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL not set or not reachable)")
    skip_redis = pytest.mark.skip(reason="needs Redis (REDIS_URL not set or not reachable)")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not has_redis:
            item.add_marker(skip_redis)


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate limits and throttles live in the cache: start every test with a clean one. Also
    the per-process system-account cache: a test whose captured on-commit callbacks cached the
    FEES account rolls it back, and the next test would name a row that is gone (production
    never deletes one)."""
    from django.core.cache import cache

    from wallets.services import _system_accounts_cache

    cache.clear()
    _system_accounts_cache.clear()
    yield


@pytest.fixture(autouse=True)
def _force_login_passes_staff_second_factor(request, monkeypatch):
    """``Client.force_login`` skips authentication; for back-office staff it also stands for
    the 2FA step the admin requires (accounts.admin_site): the staff member gets a confirmed
    2FA device and the session is marked as having passed it. Tests of that control itself
    use ``@pytest.mark.real_staff_2fa``."""
    if "real_staff_2fa" in request.keywords:
        return
    from django.test import Client

    original = Client.force_login

    def force_login(self, user, backend=None):
        if getattr(user, "is_staff", False):
            from tests.accounts.staff_2fa import staff_second_factor_prepare

            staff_second_factor_prepare(user)
        return original(self, user, backend)

    monkeypatch.setattr(Client, "force_login", force_login)


def pytest_sessionfinish(session, exitstatus):
    """In CI (KK99_REQUIRE_SERVICES=1, set by .ci/run) nothing may be skipped: a test that
    skipped because a service or tool was missing is a test that could not fail."""
    if os.environ.get("KK99_REQUIRE_SERVICES") != "1" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(f"KK99_REQUIRE_SERVICES=1 but {len(skipped)} test(s) were skipped:", red=True)
        for report in skipped[:20]:
            reporter.write_line(f"  {report.nodeid}: {report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr}")
        session.exitstatus = 1
