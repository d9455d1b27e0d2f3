"""Code shared by every service: configuration, enums, Redis keys, database plumbing."""
