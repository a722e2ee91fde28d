"""Money: prices, holds and the ledger. Amounts are integer micro-USD (1 USD = 1_000_000)."""
