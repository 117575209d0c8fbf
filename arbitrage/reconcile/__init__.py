"""`arbitrage reconcile`: a live run's ledger and event log against what the venues say (D98 §5.2)."""
