-- Tax lots carry their fees (issue 15, IRS Publication 550): a purchase's commissions and fees
-- are part of its basis, a sale's reduce the amount realized. `fees` is the piece's share of
-- its purchase's fees plus the fee part of any washed loss it absorbed (a total, kept exact);
-- `sale_fees` its share of the selling costs. Rows written before this carried none.
-- `holding_term` says whether a closed or washed piece's gain or loss is short or long term
-- (held more than one year from `holding_period_start`, which a wash sale may tack back).
ALTER TABLE tax_lots
    ADD COLUMN fees         numeric NOT NULL DEFAULT 0 CHECK (fees >= 0),
    ADD COLUMN sale_fees    numeric NOT NULL DEFAULT 0 CHECK (sale_fees >= 0),
    ADD COLUMN holding_term text CHECK (holding_term IN ('short', 'long'));

-- PostgreSQL's date + 1 year takes 29 February to 28 February, as the rule does.
UPDATE tax_lots
   SET holding_term = CASE WHEN closed_date > (holding_period_start + interval '1 year')::date
                           THEN 'long' ELSE 'short' END
 WHERE status <> 'open';

ALTER TABLE tax_lots ADD CONSTRAINT tax_lots_term_when_closed
    CHECK ((status = 'open') = (holding_term IS NULL));
