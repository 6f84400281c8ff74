"""Signals the engine sends AFTER a batch committed (never inside the batch transaction).

``batch_committed(sender=MarketEngine, symbol=…, trades=…, last_price=…, market=…)``: batches
with trades committed. Coalesced per market by the runner: sent right after the first such
batch, then at most every ENGINE_BATCH_HOOK_INTERVAL_SECONDS (``trades`` counts every trade
since the last send; the runner wakes for a pending send even when no further batch comes).
``market`` is the engine's Market (re-read by every batch): receivers need not query it.
Receivers run in the engine process, so they must be quick and must not wait for the engine
(it is the caller): the margin app refreshes the mark price and queues a liquidation cycle
(:func:`margin.liquidation.engine_batch_hook`). Sent with ``send_robust``: a failing receiver
is logged and never stops the market.
"""
from django.dispatch import Signal

batch_committed = Signal()
