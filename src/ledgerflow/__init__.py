"""ledgerflow: card authorization events posted to a double-entry ledger in near real time."""

__version__ = "0.1.0"
