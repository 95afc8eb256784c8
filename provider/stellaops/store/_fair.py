"""Which stored rows discovery reads within a byte budget: each tenant's max-min fair share.

Pure (no database): the backends rank each tenant's rows newest first and read their sizes from
the ``size`` column; :func:`fair_share` decides which rows' bytes are then loaded.

The rule (water-filling, in whole rows):

- every tenant with rows gets ``max_bytes / tenants``; what a tenant does not need is shared
  out among the others in the same way, until the budget is used or every row is read;
- a tenant's rows are read newest first, and the first one that does not fit ends that tenant's
  reading: an older row is never read while a newer one of the same tenant was left out (else a
  tenant's newest, failing scan could be left out while an older, clean one decides).

How: each row's *level* is its tenant's running total of bytes up to and including it (newest
first). Water rising evenly over the tenants reaches the rows in the order of their levels, so
the rows are taken in that order; a row that does not fit in what is left of the budget leaves
its tenant out from there on (its remaining rows too), and the walk goes on for the others.

Guarantee: let ``W`` be the max-min fair level, where ``sum(min(demand_t, W)) == max_bytes``
(``demand_t``: the bytes of tenant t's rows). Every row whose level is at most ``W`` is read,
whatever the other tenants imported. Proof: say tenant t's row r, level L <= W, did not fit.
Every row taken before it has a level <= L, so each tenant u holds at most min(demand_u, L)
and t holds L - size(r); the budget used is at most sum(min(demand_u, L)) - size(r) <=
max_bytes - size(r), so r fitted: a contradiction. And nothing is wasted: a tenant's first row
left out is bigger than what is left of the budget at the end.
"""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

T = TypeVar("T")


def fair_share(
    rows: Iterable[T],
    max_bytes: int | None,
    *,
    tenant: Callable[[T], str],
    rank: Callable[[T], int],
    size: Callable[[T], int],
) -> tuple[list[T], dict[str, int]]:
    """The rows to read within ``max_bytes`` (``None``: no budget, every row), in the order the
    budget was given out (tenants interleaved by level), and per tenant how many rows were left
    out. ``rank`` orders one tenant's rows, 1 the newest; ``size`` is a row's size in bytes."""
    by_tenant: dict[str, list[T]] = {}
    for row in rows:
        by_tenant.setdefault(tenant(row), []).append(row)
    walk: list[tuple[int, int, str, T]] = []
    for name, own in by_tenant.items():
        level = 0
        for row in sorted(own, key=rank):
            level += max(int(size(row)), 0)
            walk.append((level, int(rank(row)), name, row))
    walk.sort(key=lambda w: (w[0], w[1], w[2]))  # ties: newer rows, then tenant names (stable across backends)
    chosen: list[T] = []
    left_out: dict[str, int] = {}
    remaining = max_bytes
    for _, _, name, row in walk:
        if name in left_out:  # an earlier (newer) row of this tenant did not fit: none older is read
            left_out[name] += 1
            continue
        n = max(int(size(row)), 0)
        if remaining is not None:
            if n > remaining:
                left_out[name] = 1
                continue
            remaining -= n
        chosen.append(row)
    return chosen, left_out
