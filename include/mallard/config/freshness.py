"""A source's freshness rule: how old its newest row may be before dbt warns or fails.

It becomes the `freshness` block of the generated `_<source>__sources.yml`, on each table with an
incremental cursor (the cursor is the `loaded_at_field`). The age is measured at the run's
interval end, not the wall clock, so a backfill is not stale (include/dbt/macros/freshness_reference.sql).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from include.mallard.config.strict import ConfigValueError, StrictModel

FreshnessPeriod = Literal["minute", "hour", "day"]
_PERIOD_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
FRESHNESS_FIX = (
    "give warn_after, error_after or both as {count: <n>, period: minute|hour|day}, "
    "e.g. `freshness: {warn_after: {count: 2, period: day}, error_after: {count: 3, period: day}}`; "
    "`freshness: false` checks nothing"
)


class FreshnessThreshold(StrictModel):
    """An age, as dbt writes it: `{count: 3, period: day}`."""

    count: int = Field(ge=1, description="How many periods.")
    period: FreshnessPeriod = Field(description="minute, hour or day.")

    @property
    def seconds(self) -> int:
        return self.count * _PERIOD_SECONDS[self.period]


class Freshness(StrictModel):
    """`dbt source freshness` thresholds; past warn_after the check warns, past error_after it fails."""

    warn_after: FreshnessThreshold | None = Field(None, description="Older than this: a warning, models still build.")
    error_after: FreshnessThreshold | None = Field(
        None, description="Older than this: the freshness task fails and the models reading the table do not build."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Freshness:
        if self.warn_after is None and self.error_after is None:
            raise ConfigValueError("freshness has neither warn_after nor error_after", fix=FRESHNESS_FIX)
        if self.warn_after and self.error_after and self.warn_after.seconds > self.error_after.seconds:
            raise ConfigValueError(
                "freshness.warn_after is longer than error_after: the check would fail before it ever warns",
                fix="make warn_after shorter than error_after, or drop one of them",
            )
        return self

    def to_dbt(self) -> dict[str, Any]:
        """The `freshness` block of dbt's sources YAML."""
        return {
            name: threshold.model_dump()
            for name, threshold in (("warn_after", self.warn_after), ("error_after", self.error_after))
            if threshold is not None
        }


# A daily run loads the previous day, so a healthy cursor is at most about a day old.
DEFAULT_FRESHNESS = Freshness(
    warn_after=FreshnessThreshold(count=2, period="day"), error_after=FreshnessThreshold(count=3, period="day")
)
