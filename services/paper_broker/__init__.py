"""A paper broker that consumes the engine's order queue and fills on paper (docs/contracts.md section 4)."""
