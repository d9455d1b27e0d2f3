"""The engine's HTTP control plane (seed task 20.1, docs/contracts.md section 7, issue 6).

`runtime.py` holds what the routes need (pool, Redis, clock, engine, token); `routes/` has one
module per resource, each route a few lines: parse, call, shape. Reads go through
`live/read_model.py` (the read model) or the engine's store; writes through the store's audited
`update_config` or `commands.py`. `app.py` at the package's parent wires it all together.
"""
