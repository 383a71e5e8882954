"""A seeded, deterministic demo shop: customers, orders and payments.

Each day's orders are generated from (seed, day) alone, so any interval can be produced on its
own and always gives the same rows: the ground truth that backfill tests compare against.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import dlt
from dlt.extract import DltResource

from include.mallard.config import SyntheticSource
from include.mallard.config.kinds.synthetic import SYNTHETIC_CURSORS
from include.mallard.interval import Interval
from include.mallard.sources.hints import bound_to_interval

ORDER_STATUSES = ("placed", "shipped", "completed", "returned")
ORDER_STATUS_WEIGHTS = (1, 2, 6, 1)
PAYMENT_METHODS = ("credit_card", "bank_transfer", "gift_card", "coupon")
PAYMENT_METHOD_WEIGHTS = (6, 2, 1, 1)
FIRST_NAMES = ("Ada", "Ben", "Chloe", "Dev", "Elif", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena")
LAST_NAMES = ("Archer", "Baker", "Cho", "Diaz", "Evans", "Fischer", "Gupta", "Hale", "Ito", "Jensen")
_EPOCH = dt.date(2000, 1, 1)
# Order ids are day-number * this + position, so ids never collide across days.
ORDER_ID_STRIDE = 1_000_000
UTC = dt.UTC
# Rows per item handed to dlt: a table of any size is generated and extracted a page at a time,
# so memory stays flat (a list of 5M customers took 2 GB).
PAGE_ROWS = 10_000
T = TypeVar("T")


def pages(rows: Iterable[T], size: int = PAGE_ROWS) -> Iterator[list[T]]:
    """`rows` in lists of `size` (the last one shorter)."""
    iterator = iter(rows)
    while page := list(itertools.islice(iterator, size)):
        yield page


def customer_records(config: SyntheticSource) -> Iterator[dict[str, Any]]:
    """All customers, one at a time; they signed up during the year before `first_day`."""
    rng = random.Random(f"{config.seed}:customers")
    for customer_id in range(1, config.customers + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        signed_up = dt.datetime.combine(config.first_day, dt.time(), UTC) - dt.timedelta(
            seconds=rng.randint(1, 365 * 86_400)
        )
        yield {
            "id": customer_id,
            "first_name": first,
            "last_name": last,
            "email": f"{first.lower()}.{last.lower()}.{customer_id}@example.com",
            "signed_up_at": signed_up,
        }


def customer_rows(config: SyntheticSource) -> list[dict[str, Any]]:
    """All customers, as a list."""
    return list(customer_records(config))


def day_records(config: SyntheticSource, day: dt.date) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """The orders of one day, one at a time, each with its payments (none before `first_day`)."""
    if day < config.first_day or config.orders_per_day == 0:
        return
    rng = random.Random(f"{config.seed}:orders:{day.isoformat()}")
    low, high = (config.orders_per_day * 3) // 4, (config.orders_per_day * 5) // 4
    order_count = rng.randint(low, max(low, high))
    day_start = dt.datetime.combine(day, dt.time(), UTC)
    day_number = (day - _EPOCH).days
    offsets = sorted(rng.randrange(86_400) for _ in range(order_count))
    for position, offset in enumerate(offsets):
        order_id = day_number * ORDER_ID_STRIDE + position
        ordered_at = day_start + dt.timedelta(seconds=offset)
        order = {
            "id": order_id,
            "customer_id": rng.randint(1, config.customers),
            "store_id": rng.randint(1, config.stores),
            "status": rng.choices(ORDER_STATUSES, ORDER_STATUS_WEIGHTS)[0],
            "ordered_at": ordered_at,
        }
        payments = []
        for split in range(rng.choices((1, 2), (4, 1))[0]):
            # A payment follows its order within the same day, so both fall in one interval.
            paid_at = min(ordered_at + dt.timedelta(seconds=rng.randint(5, 900)), day_start.replace(hour=23, minute=59))
            payments.append(
                {
                    "id": order_id * 10 + split,
                    "order_id": order_id,
                    "payment_method": rng.choices(PAYMENT_METHODS, PAYMENT_METHOD_WEIGHTS)[0],
                    "amount_cents": rng.randint(500, 25_000),
                    "paid_at": paid_at,
                }
            )
        yield order, payments


def day_rows(config: SyntheticSource, day: dt.date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The orders and payments of one day, as lists."""
    orders: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    for order, its_payments in day_records(config, day):
        orders.append(order)
        payments.extend(its_payments)
    return orders, payments


def days_between(start: dt.datetime, end: dt.datetime) -> Iterator[dt.date]:
    """The calendar days (UTC) that overlap [start, end)."""
    day = start.astimezone(UTC).date()
    while dt.datetime.combine(day, dt.time(), UTC) < end:
        yield day
        day += dt.timedelta(days=1)


def interval_rows(
    config: SyntheticSource, start: dt.datetime, end: dt.datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Exactly the orders with start <= ordered_at < end, and the payments with start <= paid_at < end."""
    orders: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    for day in days_between(start, end):
        day_orders, day_payments = day_rows(config, day)
        orders.extend(o for o in day_orders if start <= o["ordered_at"] < end)
        payments.extend(p for p in day_payments if start <= p["paid_at"] < end)
    return orders, payments


def build(config: SyntheticSource, interval: Interval) -> list[DltResource]:
    """The customers (full refresh) and the orders and payments of `interval` (merged on id)."""
    # Full refresh reloads every day from first_day up to the end of the interval.
    start = interval.start if config.incremental else dt.datetime.combine(config.first_day, dt.time(), UTC)
    days = list(days_between(start, interval.end))

    def customers() -> Iterator[list[dict[str, Any]]]:
        yield from pages(customer_records(config))

    def orders() -> Iterator[list[dict[str, Any]]]:
        for day in days:
            yield from pages(order for order, _ in day_records(config, day))

    def payments() -> Iterator[list[dict[str, Any]]]:
        for day in days:
            yield from pages(payment for _, its_payments in day_records(config, day) for payment in its_payments)

    customers_resource = dlt.resource(customers, name="customers", write_disposition="replace", primary_key="id")
    bounds = Interval(start, interval.end)
    facts = [
        bound_to_interval(dlt.resource(rows, name=name), SYNTHETIC_CURSORS[name], ["id"], bounds)
        for name, rows in (("orders", orders), ("payments", payments))
    ]
    if not config.incremental:
        for resource in facts:
            resource.apply_hints(write_disposition="replace")
    return [customers_resource, *facts]
