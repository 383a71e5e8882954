"""What a rendered Airflow task is, as text: for tests that build the same task two ways and compare."""

from __future__ import annotations

import re
from typing import Any

# Links to the DAG, its groups and other tasks: new objects in every render, compared on their own.
LINKS = frozenset({"_dag", "task_group", "_task_group", "upstream_task_ids", "downstream_task_ids"})


def described(task: Any) -> dict[str, str]:
    """Every attribute of a task but its links, as text with memory addresses left out."""
    return {
        name: re.sub(r" at 0x[0-9a-f]+", "", repr(value)) for name, value in vars(task).items() if name not in LINKS
    }
