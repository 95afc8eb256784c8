"""The store's fair split of the byte budget between tenants (provider/stellaops/store/_fair.py),
without a database: the backends' behaviour is in tests/hardening/test_store_crowding.py."""

from __future__ import annotations

from stellaops.store._fair import fair_share

Row = tuple[str, int, int]  # tenant, rank (1 = newest), size


def _split(rows: list[Row], max_bytes: int | None) -> tuple[list[Row], dict[str, int]]:
    return fair_share(rows, max_bytes, tenant=lambda r: r[0], rank=lambda r: r[1], size=lambda r: r[2])


def test_no_budget_reads_every_row_tenants_interleaved_by_running_total() -> None:
    rows = [("b", 2, 10), ("a", 1, 10), ("a", 2, 10), ("b", 1, 10), ("a", 3, 1)]
    chosen, left = _split(rows, None)
    assert chosen == [("a", 1, 10), ("b", 1, 10), ("a", 2, 10), ("b", 2, 10), ("a", 3, 1)]
    assert left == {}


def test_a_zero_budget_reads_nothing_and_counts_every_row() -> None:
    assert _split([("a", 1, 1), ("a", 2, 1), ("b", 1, 5)], 0) == ([], {"a": 2, "b": 1})


def test_the_first_row_that_does_not_fit_ends_the_tenant_even_if_an_older_one_would_fit() -> None:
    chosen, left = _split([("a", 1, 90), ("a", 2, 5), ("b", 1, 50)], 100)
    assert chosen == [("b", 1, 50)] and left == {"a": 2}


def test_a_tenant_within_its_fair_share_is_read_whatever_the_order_of_sizes() -> None:
    # a's two rows (newest 300, then 2) are within half of 1,000; b's one row is 699
    chosen, left = _split([("a", 1, 300), ("a", 2, 2), ("b", 1, 699)], 1000)
    assert chosen == [("a", 1, 300), ("a", 2, 2)] and left == {"b": 1}


def test_what_one_tenant_leaves_goes_to_the_others() -> None:
    chosen, left = _split([("small", 1, 10)] + [("big", i, 100) for i in range(1, 10)], 500)
    assert ("small", 1, 10) in chosen and [r for r in chosen if r[0] == "big"] == [("big", i, 100) for i in range(1, 5)]
    assert left == {"big": 5}


def test_equal_running_totals_go_to_the_tenant_names_in_order() -> None:
    chosen, left = _split([("b", 1, 60), ("a", 1, 60)], 100)
    assert chosen == [("a", 1, 60)] and left == {"b": 1}
