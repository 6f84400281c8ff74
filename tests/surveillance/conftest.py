"""Surveillance tests use the shared exchange fixtures (tests/fixtures.py): a market, funded traders, an engine."""
