"""Linked accounts from deposit sources and login devices, with their evidence on the alerts."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import RequestFactory

from accounts.devices import device_fingerprint, ip_network_prefix
from accounts.models import LoginDevice
from accounts.services import login_record
from surveillance.models import AccountLink
from surveillance.services import LINK_MAX_SHARED, detectors_run, links_infer
from tests.fixtures import place
from wallets.chains.models import ChainAsset, Deposit, DepositStatus
from wallets.models import Asset

pytestmark = pytest.mark.django_db

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"


def _login(user, ip="203.0.113.7", ua=UA, device_id=""):
    meta = {"REMOTE_ADDR": ip, "HTTP_USER_AGENT": ua}
    if device_id:
        meta["HTTP_X_DEVICE_ID"] = device_id
    login_record(user=user, method="session", request=RequestFactory().post("/accounts/login/", **meta))


def _links(source):
    return list(AccountLink.objects.filter(source=source).order_by("user_a_id", "user_b_id").values_list("user_a_id", "user_b_id"))


@pytest.fixture
def eth():
    asset = Asset.objects.get_or_create(symbol="ETH", defaults={"name": "ETH", "precision": 8})[0]
    return ChainAsset.objects.create(chain="ETH", asset=asset, decimals=18)


def _deposit(eth, user, *, txid, index=0, sender="", status=DepositStatus.CREDITED):
    return Deposit.objects.create(
        chain="ETH", txid=txid, index=index, asset=eth.asset, chain_asset=eth, user=user, address=f"0xdep{user.pk}", from_address=sender,
        amount=Decimal(1), amount_base_units=str(10**18), block_height=10, block_hash="0xb", status=status,
    )


def test_a_login_records_one_hashed_device_per_fingerprint(alice):
    _login(alice, ip="203.0.113.7")
    _login(alice, ip="203.0.113.99")  # same /24, same browser: the same device
    _login(alice, ip="198.51.100.7")  # another network: another fingerprint
    devices = list(LoginDevice.objects.filter(user=alice).order_by("pk"))
    assert [d.logins for d in devices] == [2, 1]
    for d in devices:  # only a keyed hash is kept: no address, no user agent
        assert len(d.fingerprint) == 64 and "203.0.113" not in d.fingerprint and "Firefox" not in d.fingerprint
    assert devices[0].fingerprint == device_fingerprint(user_agent=UA, ip="203.0.113.200")
    assert device_fingerprint(user_agent=UA, ip="203.0.113.7", device_id="app-1") != device_fingerprint(user_agent=UA, ip="203.0.113.7")


def test_network_prefix_is_a_slash_24_or_a_slash_48():
    assert ip_network_prefix("203.0.113.77") == "203.0.113.0/24"
    assert ip_network_prefix("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert ip_network_prefix(None) == "" and ip_network_prefix("not-an-ip") == ""


def test_accounts_signing_in_from_one_device_are_linked_with_the_device_as_evidence(alice, bob, make_user):
    carol = make_user(email="carol@example.com")
    _login(alice, ip="203.0.113.7")
    _login(bob, ip="203.0.113.8")  # same browser, same /24 (another address of the same NAT)
    _login(carol, ip="203.0.113.9", ua="curl/8.0")  # another user agent: another device
    links_infer()
    assert _links(AccountLink.Source.DEVICE) == [(alice.pk, bob.pk)]
    assert AccountLink.objects.get(source=AccountLink.Source.DEVICE).evidence.startswith("logins from device ")


def test_deposits_from_one_sending_address_or_one_transaction_link_their_accounts(eth, alice, bob, make_user):
    carol, dave = make_user(email="carol@example.com"), make_user(email="dave@example.com")
    _deposit(eth, alice, txid="0x01", sender="0xFunder")
    _deposit(eth, bob, txid="0x02", sender="0xFunder")
    _deposit(eth, carol, txid="0x03", index=0, sender="0xOther")  # one transaction paying carol and dave
    _deposit(eth, dave, txid="0x03", index=1, sender="0xOther")
    _deposit(eth, carol, txid="0x04", sender="0xGhost", status=DepositStatus.ORPHANED)  # dropped in a reorg: no evidence
    _deposit(eth, alice, txid="0x05", sender="0xGhost", status=DepositStatus.ORPHANED)
    links_infer()
    assert _links(AccountLink.Source.DEPOSIT_SOURCE) == [(alice.pk, bob.pk), (carol.pk, dave.pk)]
    assert _links(AccountLink.Source.DEPOSIT_TX) == [(carol.pk, dave.pk)]
    evidence = AccountLink.objects.get(source=AccountLink.Source.DEPOSIT_SOURCE, user_a=alice).evidence
    assert "ETH 0xFunder" in evidence
    assert links_infer() == 0  # idempotent


def test_a_sending_address_shared_by_many_accounts_is_a_service_and_links_nobody(eth, make_user):
    users = [make_user() for _ in range(LINK_MAX_SHARED + 1)]
    for n, user in enumerate(users):
        _deposit(eth, user, txid=f"0xhot{n}", sender="0xExchangeHotWallet")
    links_infer()
    assert not AccountLink.objects.exists()


def test_a_wash_alert_between_device_linked_accounts_carries_the_link_evidence(market, alice, bob, engine):
    _login(alice, ip="203.0.113.7")
    _login(bob, ip="203.0.113.8")  # same device fingerprint, not the same address
    links_infer()
    place(alice, market, "SELL", price="100", quantity="1")
    place(bob, market, "BUY", price="100", quantity="1")
    engine.run_until_idle()
    [alert] = detectors_run(market=market)
    assert alert.detector == "wash" and alert.evidence["kind"] == "linked"
    assert [link["source"] for link in alert.evidence["links"]] == ["device"]
    assert alert.evidence["links"][0]["evidence"].startswith("logins from device ")
