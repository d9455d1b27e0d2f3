"""The autonomous trading engine: a pure decision core plus thin I/O adapters."""
