"""One audit catalog: every action any module writes has a labelled AuditAction choice (the
admin shows labels, never raw names)."""
import pytest

from accounts.audit import AuditAction
from margin.liquidation import LiquidationAuditAction
from margin.services import MarginAuditAction
from wallets.chains.audit import ChainsAuditAction
from wallets.services import AdjustmentAuditAction


def _values(enum) -> set[str]:
    if isinstance(enum, type) and hasattr(enum, "__members__"):
        return {member.value for member in enum}
    return {value for name, value in vars(enum).items() if name.isupper() and isinstance(value, str)}


@pytest.mark.parametrize("enum", [ChainsAuditAction, MarginAuditAction, LiquidationAuditAction, AdjustmentAuditAction], ids=lambda e: e.__name__)
def test_every_audit_action_a_module_writes_has_a_label_in_the_one_audit_catalog(enum):
    values = _values(enum)
    assert values, f"{enum.__name__} names no actions"
    assert values <= {choice.value for choice in AuditAction}, values - {choice.value for choice in AuditAction}
