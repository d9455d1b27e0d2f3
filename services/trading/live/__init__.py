"""The live driver: the engine loop and its adapters (PostgreSQL stores, the Redis queues,
the outbox, fill reports, schedules), calling the decision core."""
