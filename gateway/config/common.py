"""What every section of the configuration shares: its base model and the patterns of names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MIB = 1024 * 1024


class Model(BaseModel):
    """A section of the file: unknown keys refused, values fixed once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)
