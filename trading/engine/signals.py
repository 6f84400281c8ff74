"""Signals the engine sends AFTER a batch committed (never inside the batch transaction).

``batch_committed(sender=MarketEngine, symbol=…, trades=…, last_price=…)``: a batch with
trades committed. Receivers run in the engine process, so they must be quick and must not
wait for the engine (it is the caller): the margin app refreshes the mark price and queues a
liquidation cycle (:func:`margin.liquidation.engine_batch_hook`). Sent with ``send_robust``:
a failing receiver is logged and never stops the market.
"""
from django.dispatch import Signal

batch_committed = Signal()
