"""The matching engine service (see docs/engine.md).

``core.MarketEngine`` runs one market's batch through the parts: ``claiming`` (which commands),
``matching`` (the C book, in memory), ``persisting`` (writes, lock order, fencing),
``publishing`` (events after commit), ``faults`` (fault injection for tests); settlement rules
live in :mod:`trading.settlement`. ``wakeup`` carries wake-ups both ways after commit;
``runner.EngineRunner`` is the process loop (advisory-lock ownership, hot standby, LISTEN);
``manage.py run_engine`` is its thin command."""
