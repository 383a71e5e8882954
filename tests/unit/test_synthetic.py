"""The synthetic generator: deterministic, sliced exactly by interval, consistent keys."""

from __future__ import annotations

import datetime as dt

from include.mallard.config import SyntheticSource
from include.mallard.sources import synthetic

UTC = dt.UTC
CONFIG = SyntheticSource(name="shop", kind="synthetic", seed=7, customers=50, orders_per_day=30)


def _at(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour, tzinfo=UTC)


def test_same_seed_same_rows():
    assert synthetic.customer_rows(CONFIG) == synthetic.customer_rows(CONFIG)
    assert synthetic.interval_rows(CONFIG, _at(1), _at(4)) == synthetic.interval_rows(CONFIG, _at(1), _at(4))


def test_other_seed_other_rows():
    other = CONFIG.model_copy(update={"seed": 8})
    assert synthetic.interval_rows(CONFIG, _at(1), _at(2)) != synthetic.interval_rows(other, _at(1), _at(2))


def test_a_day_does_not_depend_on_the_interval_it_is_generated_in():
    orders_week, payments_week = synthetic.interval_rows(CONFIG, _at(1), _at(8))
    orders_day, payments_day = synthetic.interval_rows(CONFIG, _at(3), _at(4))
    assert [o for o in orders_week if o["ordered_at"].day == 3] == orders_day
    assert [p for p in payments_week if p["paid_at"].day == 3] == payments_day


def test_split_intervals_add_up_to_the_whole():
    whole_orders, whole_payments = synthetic.interval_rows(CONFIG, _at(1), _at(3))
    first_orders, first_payments = synthetic.interval_rows(CONFIG, _at(1), _at(2, 7))
    second_orders, second_payments = synthetic.interval_rows(CONFIG, _at(2, 7), _at(3))
    assert first_orders + second_orders == whole_orders
    assert first_payments + second_payments == whole_payments
    assert all(o["ordered_at"] < _at(2, 7) for o in first_orders)


def test_nothing_before_first_day_and_empty_interval_is_empty():
    assert synthetic.interval_rows(CONFIG, _at(1) - dt.timedelta(days=3), _at(1)) == ([], [])
    assert synthetic.interval_rows(CONFIG, _at(2), _at(2)) == ([], [])


def test_keys_are_unique_and_consistent():
    orders, payments = synthetic.interval_rows(CONFIG, _at(1), _at(11))
    order_ids = [o["id"] for o in orders]
    assert len(order_ids) == len(set(order_ids))
    assert len({p["id"] for p in payments}) == len(payments)
    assert {p["order_id"] for p in payments} <= set(order_ids)
    assert all(1 <= o["customer_id"] <= CONFIG.customers for o in orders)
    assert all(1 <= o["store_id"] <= CONFIG.stores for o in orders)
    assert {o["status"] for o in orders} <= set(synthetic.ORDER_STATUSES)


def test_volume_follows_orders_per_day():
    orders, _ = synthetic.interval_rows(CONFIG, _at(1), _at(31))
    assert 30 * 30 * 0.75 <= len(orders) <= 30 * 30 * 1.25


def test_pages_cut_rows_in_lists_of_the_page_size():
    assert [len(page) for page in synthetic.pages(range(25), size=10)] == [10, 10, 5]
    assert list(synthetic.pages([], size=10)) == []


def test_the_resources_generate_a_page_at_a_time_with_the_same_rows():
    """A table of any size never sits in memory whole: 100k customers as a list took ~60 MB (5M: 2 GB)."""
    import tracemalloc

    from include.mallard.interval import Interval

    config = CONFIG.model_copy(update={"customers": 100_000, "orders_per_day": 25_000})
    start, end = _at(1), _at(3)
    list(synthetic.build(CONFIG, Interval(start, end))[0])  # dlt's lazy imports, outside the measurement
    tracemalloc.start()
    try:
        resources = {r.name: r for r in synthetic.build(config, Interval(start, end))}
        count = sum(1 for _ in resources["customers"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 100_000
    assert peak < 25 * 2**20, f"{peak / 2**20:.0f} MB while extracting 100,000 customers"
    # The same rows as the whole lists, in the same order.
    assert list(synthetic.build(config, Interval(start, end))[0]) == synthetic.customer_rows(config)
    orders, payments = synthetic.interval_rows(config, start, end)
    assert list(resources["orders"]) == orders and list(resources["payments"]) == payments
