"""A ticker's latest price from its last trade and top of book (core/last_price.py), against
the rule in words: the newest of the two wins; a newer quote keeps a trade it brackets and
otherwise gives its midpoint; a one-sided or crossed quote counts for nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core.last_price import LastPrice, LastTrade, TopOfBook, last_price

T0 = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
cents = st.integers(0, 2_000).map(lambda c: Decimal(c) / 100)
moments = st.integers(0, 600).map(lambda s: T0 + timedelta(seconds=s))
trades = st.builds(LastTrade, cents.filter(lambda p: p > 0), st.integers(1, 500), moments)
quotes = st.builds(TopOfBook, cents, cents, moments)


@settings(max_examples=500)
@given(trade=st.none() | trades, quote=st.none() | quotes)
def test_the_newest_price_the_market_showed(trade: LastTrade | None, quote: TopOfBook | None) -> None:
    usable = quote if quote is not None and quote.bid > 0 and quote.ask >= quote.bid else None
    result = last_price(trade, quote)
    if trade is None and usable is None:
        assert result is None
        return
    assert result is not None
    newest = max(x.at for x in (trade, usable) if x is not None)
    assert result.at == newest
    if usable is None or (trade is not None and trade.at >= usable.at):
        assert result == LastPrice(trade.price, trade.at, trade.size)
    else:
        # A quote is the newest news: the price is one its two sides allow, the trade's if it can.
        assert usable.bid <= result.price <= usable.ask
        if trade is not None and usable.bid <= trade.price <= usable.ask:
            assert result.price == trade.price
        else:
            assert result.price * 2 == usable.bid + usable.ask
        assert result.volume == 0


def test_a_quote_that_moved_away_gives_its_midpoint() -> None:
    trade = LastTrade(Decimal("10.00"), 100, T0)
    quote = TopOfBook(Decimal("10.10"), Decimal("10.13"), T0 + timedelta(minutes=20))
    assert last_price(trade, quote) == LastPrice(Decimal("10.115"), quote.at, 0)
