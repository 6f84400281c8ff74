from accounts.audit import AuditAction
from wallets.chains.audit import ChainsAuditAction


def test_every_chains_audit_action_has_a_label_in_the_one_audit_catalog():
    labelled = {choice.value for choice in AuditAction}
    assert {action.value for action in ChainsAuditAction} <= labelled
