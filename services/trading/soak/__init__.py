"""The reliability soak (issue 12): the real stack (the engine process as `stonks-trading run`
wires it, the paper broker, private PostgreSQL and Valkey) under a steady stream of upstream
recommendations and injected faults, then checked by invariants stated over the database.

`stonks-trading soak` runs it by hand; tests/reliability runs a short version in the suite.
"""
