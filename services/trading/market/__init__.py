"""Market data: price bars and quotes, the sample market, CSV import and the sample signal."""
