-- Issue 14, live prices: the latest price a broker's market data gives (its last trade, or its
-- quote when newer) is stored in `price_bars` with the interval `last`: one instant, the price
-- in all four columns, the trade's size as volume (docs/decisions.md, "Live prices from Alpaca").
-- The interval's check is found by what it says, not by name: `price_bars` may predate
-- migration 001, created upstream with a constraint named otherwise.
DO $$
DECLARE
    old record;
BEGIN
    FOR old IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'price_bars'::regclass AND contype = 'c'
          AND pg_get_constraintdef(oid) LIKE '%interval%'
    LOOP
        EXECUTE format('ALTER TABLE price_bars DROP CONSTRAINT %I', old.conname);
    END LOOP;
END $$;

ALTER TABLE price_bars ADD CONSTRAINT price_bars_interval_check
    CHECK (interval IN ('1d', '5m', '1m', 'last'));
