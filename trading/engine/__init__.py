"""The matching engine service (see docs/engine.md).

``core.MarketEngine`` — one market's book, batch processing, settlement;
``runner.EngineRunner`` — the process loop: advisory-lock ownership, hot standby,
LISTEN/NOTIFY wake-ups; ``manage.py run_engine`` is its thin command."""
