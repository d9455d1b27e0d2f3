-- A recommendation whose decision PostgreSQL refused even as a plain skip (issue 12) is parked:
-- the fault recorded for it names it, and the engine never takes it again, so one row that
-- cannot be stored does not hold back the rows behind it by failing on every tick.
ALTER TABLE engine_faults ADD COLUMN recommendation_id bigint;
CREATE UNIQUE INDEX engine_faults_parked_recommendation_idx
    ON engine_faults (recommendation_id) WHERE recommendation_id IS NOT NULL;
