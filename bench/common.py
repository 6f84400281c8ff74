"""What the benchmarks share: a throw-away PostgreSQL database, Django set up against it, the
BTC/USDT market they trade, a nearest-rank percentile, and the marked section each one writes
into ``docs/benchmarks.md``.

Each benchmark keeps only what it measures; set-up written once here means a change of the
market's fields or of the settings module reaches every benchmark alike."""
from __future__ import annotations

import logging
import os
import sys
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]

_KEEP = object()  # django_setup(redis_url=...) default: leave REDIS_URL as the environment has it


def recreate_database(url: str) -> None:
    """Drop and create the database ``url`` names (its open sessions are ended first)."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [name])
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def django_setup(database_url: str | None = None, *, redis_url=_KEEP, env: dict | None = None, quiet: bool = True) -> None:
    """Point Django at ``database_url`` and set it up (settings ``kk99.settings.base`` unless
    ``DJANGO_SETTINGS_MODULE`` says otherwise). ``redis_url``: a URL sets ``REDIS_URL``, ``None``
    or ``""`` removes it (in-memory cache and channel layer), left out keeps the environment's.
    ``env`` is applied last; ``quiet`` lowers the root logger to WARNING."""
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    if redis_url is not _KEEP:
        if redis_url:
            os.environ["REDIS_URL"] = redis_url
        else:
            os.environ.pop("REDIS_URL", None)
    os.environ.update(env or {})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kk99.settings.base")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    if quiet:
        logging.getLogger().setLevel(logging.WARNING)


def bench_market(**fields):
    """The BTC and USDT assets and a BTCUSDT market with its engine state row; ``fields``
    override the market's defaults (tick 0.01, step 0.001, reference price 100)."""
    from trading.models import EngineState, Market
    from wallets.models import Asset

    btc = Asset.objects.get_or_create(symbol="BTC", defaults={"name": "Bitcoin", "precision": 8})[0]
    usdt = Asset.objects.get_or_create(symbol="USDT", defaults={"name": "Tether", "precision": 8})[0]
    values = dict(
        tick_size=Decimal("0.01"), step_size=Decimal("0.001"), min_qty=Decimal("0.001"), max_qty=Decimal("1000"),
        min_notional=Decimal("0.01"), price_band_pct=Decimal("50"), reference_price=Decimal("100"),
    )
    values.update(fields)
    market = Market.objects.create(symbol="BTCUSDT", base=btc, quote=usdt, **values)
    EngineState.objects.get_or_create(market=market)
    return market, btc, usdt


def percentile(samples: list[float], q: float) -> float:
    """Nearest rank: the sample below which a fraction ``q`` of them lie (NaN for none)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``
    (appending the block, or creating the file, where it is not there yet)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{text.strip()}\n{end}"
    if start in doc and end in doc:
        doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    path.write_text(doc)
