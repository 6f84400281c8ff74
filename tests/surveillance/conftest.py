from tests.trading.conftest import (  # noqa: F401
    alice,
    bob,
    btc,
    engine,
    make_user,
    market,
    trader,
    usdt,
)
