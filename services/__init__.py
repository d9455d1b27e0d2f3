"""Services of the stonks-oracle system that live in this repository."""
