"""`kind: synthetic`: the seeded demo shop (customers, orders and payments spread over days)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from include.mallard.config.base import EmptyPolicy, SourceBase

# The incremental tables of the synthetic shop and their cursors (sources/synthetic.py builds them).
SYNTHETIC_CURSORS = {"orders": "ordered_at", "payments": "paid_at"}


class SyntheticSource(SourceBase):
    """A seeded, deterministic shop: customers, orders and payments spread over days."""

    kind: Literal["synthetic"]
    seed: int = Field(42, description="Same seed, same rows.")
    customers: int = Field(200, ge=1, le=10_000_000, description="Number of customers.")
    stores: int = Field(5, ge=1, le=10_000, description="Orders pick a store_id in 1..stores.")
    orders_per_day: int = Field(40, ge=0, le=500_000, description="Average orders per day.")
    first_day: dt.date = Field(dt.date(2024, 1, 1), description="No orders exist before this day.")
    incremental: bool = Field(
        True,
        description=(
            "true: each run loads the orders and payments of its data interval and merges them on id. "
            "false: each run reloads everything from first_day to the end of its interval (full refresh)."
        ),
    )

    def empty_policy_of(self, table_name: str) -> EmptyPolicy:
        # The generator's output is the whole truth: no orders in its days (orders_per_day: 0, an
        # interval before first_day with incremental: false) is a correct result, not a broken input.
        return EmptyPolicy("ok", None, "synthetic sources")

    def table_cursors(self) -> dict[str, str]:
        # Also when not incremental: the cursor still dates each row (staging's freshness checks).
        return dict(SYNTHETIC_CURSORS)
