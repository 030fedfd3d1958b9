"""The base of every spec model: unknown keys are an error, and a built spec does not change."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["SpecModel"]


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
