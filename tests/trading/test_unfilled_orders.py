"""`account_with_unfilled` is `with_unfilled` of a whole account (issue 16): the account itself
when no order counts, the same figures as the rule's own rebuild otherwise."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.trading.core.fill_application import StopPlan
from services.trading.core.models import OpenPosition, PortfolioState
from services.trading.core.unfilled_orders import UnfilledOrder, account_with_unfilled, with_unfilled

TICKERS = ("AAA", "BBB", "CCC", "DDD")
PLAN = StopPlan(Decimal("1.5"), Decimal(2), Decimal(2), Decimal("0.7"))
quantities = st.integers(0, 50).map(Decimal)
prices = st.integers(1, 500).map(lambda cents: Decimal(cents) / 4)


@st.composite
def accounts(draw: st.DrawFn) -> PortfolioState:
    held = draw(st.lists(st.sampled_from(TICKERS), unique=True, max_size=3))
    positions = tuple(
        OpenPosition(
            t, draw(quantities), draw(prices), draw(prices), "Tech", Decimal(1), Decimal(900), Decimal("0.7")
        )
        for t in held
    )
    return PortfolioState(
        positions, Decimal(draw(st.integers(0, 100_000))), Decimal(draw(st.integers(0, 500)))
    )


orders = st.lists(
    st.builds(
        UnfilledOrder,
        st.sampled_from(TICKERS),
        st.sampled_from(("buy", "sell")),
        quantities.filter(bool),
        st.just("Tech"),
        st.just(PLAN),
    ),
    max_size=4,
)
price_books = st.dictionaries(st.sampled_from(TICKERS), prices)


@given(accounts(), orders, price_books, st.booleans())
def test_the_account_with_unfilled_orders_is_the_rules_own(
    account: PortfolioState, unfilled: list[UnfilledOrder], book: dict[str, Decimal], pending_buys: bool
) -> None:
    seen = account_with_unfilled(account, unfilled, book, pending_buys=pending_buys)
    rebuilt = with_unfilled(
        account.positions, account.cash, account.reserve_pool, unfilled, book, pending_buys=pending_buys
    )
    assert (seen.positions, seen.cash, seen.reserve_pool) == (
        rebuilt.positions,
        rebuilt.cash,
        rebuilt.reserve_pool,
    )
    assert str(seen.cash) == str(rebuilt.cash)  # the same digits, not only the same value


def test_an_account_no_order_changes_is_returned_as_it_is() -> None:
    held = OpenPosition(
        "AAA", Decimal(10), Decimal(5), Decimal(6), "Tech", Decimal(4), Decimal(9), Decimal("0.7")
    )
    account = PortfolioState((held,), Decimal(1000))
    later_tranche = UnfilledOrder("BBB", "buy", Decimal(3), "Tech", PLAN)
    prices = {"AAA": Decimal(6), "BBB": Decimal(20)}
    # A sell is sized from filled shares: the buy on its way does not count.
    assert account_with_unfilled(account, [later_tranche], prices, pending_buys=False) is account
    # A buy without a price cannot be valued, and a sell of a ticker not held takes nothing.
    nothing = [UnfilledOrder("CCC", "buy", Decimal(3)), UnfilledOrder("DDD", "sell", Decimal(1))]
    assert account_with_unfilled(account, nothing, prices) is account
    counted = account_with_unfilled(account, [later_tranche], prices)
    assert counted is not account and counted.cash == Decimal(940)
    assert [p.ticker for p in counted.positions] == ["AAA", "BBB"]
