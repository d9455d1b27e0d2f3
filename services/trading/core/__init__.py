"""The decision core: pure rules and the values they read and return. No I/O: no database,
no queue, no HTTP, no wall clock (time comes from an injected clock)."""
