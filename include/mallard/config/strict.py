"""The two things every config model shares: strict parsing, and errors that carry their fix."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigValueError(ValueError):
    """A validation error that carries its own fix, and may keep the input out of the message."""

    def __init__(self, message: str, *, fix: str, hide_input: bool = False) -> None:
        super().__init__(message)
        self.fix = fix
        self.hide_input = hide_input


class StrictModel(BaseModel):
    """Unknown fields are errors, so a typo never silently becomes a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
