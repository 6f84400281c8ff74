from tests.trading.conftest import alice, bob, btc, engine, make_user, market, trader, usdt  # noqa: F401
