"""The ``search`` section: the meta tools that find, describe and call the catalogue's tools, and lazy listing.

With ``enabled``, an endpoint adds three tools of its own (``search_tools``, ``describe_tool``, ``call_tool``
unless renamed). With ``lazy`` as well, its ``tools/list`` shows only those three and the tools whose canonical name
matches one of ``always``: a client with a small context finds the rest by searching. Lazy mode hides tools from
the list only, never from calls: a client may still call any tool it may use, directly or through ``call_tool``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The gateway's own tools have no backend prefix and read the same in both name styles, so their names keep to
# the strict rendering's characters (``gateway.catalogue.naming.STRICT_NAME``).
TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
MAX_LIMIT = 50


class MetaToolNames(BaseModel):
    """What the three meta tools are called."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    search: str = Field(default="search_tools", pattern=TOOL_NAME_PATTERN)
    describe: str = Field(default="describe_tool", pattern=TOOL_NAME_PATTERN)
    call: str = Field(default="call_tool", pattern=TOOL_NAME_PATTERN)

    @model_validator(mode="after")
    def _distinct(self) -> MetaToolNames:
        if len({self.search, self.describe, self.call}) < 3:
            raise ValueError("the search, describe and call tools need three different names")
        return self

    def all(self) -> tuple[str, str, str]:
        return (self.search, self.describe, self.call)


class SearchConfig(BaseModel):
    """Tool search on one endpoint: off unless enabled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # tools/list shows only the meta tools and the ``always`` tools; calls are unchanged.
    lazy: bool = False
    # Shell-style patterns of canonical tool names (``ops/*``, ``hr/get_on_call``) listed in lazy mode too.
    always: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    names: MetaToolNames = MetaToolNames()
    # Hits a search returns when the caller gives no ``limit``, and the most it may ask for.
    default_limit: int = Field(default=10, ge=1, le=MAX_LIMIT)
    max_limit: int = Field(default=MAX_LIMIT, ge=1, le=MAX_LIMIT)

    @model_validator(mode="after")
    def _consistent(self) -> SearchConfig:
        if self.lazy and not self.enabled:
            raise ValueError("lazy needs enabled: true (without the meta tools, lazy mode would hide tools for good)")
        if self.default_limit > self.max_limit:
            raise ValueError(f"default_limit ({self.default_limit}) is above max_limit ({self.max_limit})")
        return self
