"""The project's environment (`scripts/env.sh`), for processes that were not started from a shell that sourced it.

`scripts/env.sh` stays the one place the settings are written: the `mallard` command and the local
stack source it in bash and take what it exports, so the Makefile, the stack and the CLI agree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

from include.mallard.paths import PROJECT_ROOT

ENV_SCRIPT = PROJECT_ROOT / "scripts" / "env.sh"


def project_environment(base: Mapping[str, str]) -> dict[str, str]:
    """`base` after `source scripts/env.sh` (values already set in `base` win where env.sh allows it)."""
    output = subprocess.run(
        ["bash", "-c", 'source "$1" >/dev/null && env -0', "bash", str(ENV_SCRIPT)],
        env=dict(base),
        check=True,
        capture_output=True,
    ).stdout
    return dict(item.split("=", 1) for item in output.decode().split("\0") if "=" in item)


def apply_project_environment() -> None:
    """Make this process look as if it had been started after `source scripts/env.sh`."""
    if os.environ.get("MALLARD_ROOT") == str(PROJECT_ROOT):
        return  # already sourced
    os.environ.update(project_environment(os.environ))
    # PYTHONPATH only reaches child processes; this process imports the project (e.g. a python
    # source's `include.examples...`) from the root too.
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
