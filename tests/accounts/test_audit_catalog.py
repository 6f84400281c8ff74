"""One audit catalog: every action written is a labelled AuditAction choice (the admin shows
labels, never raw names); modules name actions from it directly, not through aliases."""
import pathlib
import re

import pytest

from accounts.audit import AuditAction, AuditLog, audit_record

pytestmark = pytest.mark.django_db
ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_an_action_outside_the_one_catalog_is_refused_and_nothing_is_written(alice):
    with pytest.raises(ValueError):
        audit_record(action="made_up_action", target_user=alice)
    assert not AuditLog.objects.filter(action="made_up_action").exists()
    row = audit_record(action=AuditAction.LOGIN.value, target_user=alice)  # the catalog's value, as stored
    assert row.action == AuditAction.LOGIN and row.get_action_display() == "Login"


def test_no_module_keeps_its_own_table_of_audit_actions():
    """Aliases of the catalog (MarginAuditAction.TRANSFER = AuditAction.MARGIN_TRANSFER …)
    gave each action a second name to keep in step."""
    packages = [p for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name != "tests"]
    modules = [path for package in packages for path in package.rglob("*.py")]
    assert len(modules) > 100  # the product's packages were found
    offenders = [str(path.relative_to(ROOT)) for path in modules if re.search(r"^class (\w+)AuditAction\b", path.read_text(), re.MULTILINE)]
    assert offenders == []
