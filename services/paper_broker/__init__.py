"""A paper broker that consumes the engine's order queue and fills on paper (SPEC section 4)."""
