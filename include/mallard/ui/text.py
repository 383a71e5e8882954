"""Text shown in the UI: never an absolute host path.

Error messages (a failed load, a dbt message, a config problem) often name files by their absolute
path: the project root becomes a relative path, any other absolute path keeps only its last two
parts (`…/models/orders.sql`), so a page tells the user which file without revealing the host.
"""

from __future__ import annotations

import re
from pathlib import Path

from include.mallard.paths import PROJECT_ROOT

# An absolute path of two or more parts that is not part of a URL or of a longer word
# (`http://host/a/b` is left alone: its slashes follow `:` or a host name).
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?:[\w.@+-]+/)+[\w.@+-]*")


def _short(match: re.Match[str]) -> str:
    parts = [part for part in match.group(0).split("/") if part]
    return "…/" + "/".join(parts[-2:]) if len(parts) > 2 else "…/" + "/".join(parts)


def shown_text(text: str) -> str:
    """`text` with the project root made relative and other absolute paths shortened."""
    root = str(PROJECT_ROOT)
    text = text.replace(root + "/", "").replace(root, ".")
    return _ABSOLUTE_PATH.sub(_short, text)


def shown_path(path: Path) -> str:
    """A file as the UI names it: relative to the project, else shortened."""
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else shown_text(str(path))
