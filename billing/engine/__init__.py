"""The billing engine: pure, typed functions of dates, seat snapshots and policies (no I/O, no clock).

The rules are stated once, in the module that applies them, and summarised in ``docs/billing.md``:
money and rounding (:mod:`.money`), billing periods (:mod:`.periods`), seats per day (:mod:`.seats`),
invoice lines and Enterprise true-forward (:mod:`.pricing`), the trial (:mod:`.trial`), dunning
(:mod:`.dunning`) and the billing status machine (:mod:`.status`).
"""
