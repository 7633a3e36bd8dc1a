"""Tool arguments checked against the tool's ``inputSchema`` before the call leaves the gateway.

The schema's ``$schema`` picks the dialect (2020-12 when absent, as MCP specifies; draft 4, 6, 7 and 2019-09 are
recognised). Remote ``$ref``s are never fetched. A schema the validator cannot use is logged once and the call
goes ahead unchecked: the backend still validates, and a backend's odd schema must not make its tool unusable.
"""

from __future__ import annotations

import logging
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from gateway.errors import InvalidArguments

logger = logging.getLogger(__name__)


class ArgumentValidator:
    """Compiled validators per tool, rebuilt when the backend's schema object changes."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[dict[str, Any], Validator | None]] = {}

    def check(self, tool: str, schema: dict[str, Any] | None, arguments: dict[str, Any] | None) -> None:
        """Raise ``InvalidArguments`` naming the JSON path of the most relevant failure."""
        validator = self._validator(tool, schema) if schema is not None else None
        if validator is None:
            return
        try:
            error = best_match(validator.iter_errors(dict(arguments or {})))
        except Unresolvable as exc:
            logger.warning("cannot validate arguments of %s: unresolvable $ref %s", tool, exc)
            self._cache[tool] = (schema or {}, None)
            return
        if error is not None:
            raise InvalidArguments(tool, error.json_path, error.message)

    def _validator(self, tool: str, schema: dict[str, Any]) -> Validator | None:
        cached = self._cache.get(tool)
        if cached is not None and cached[0] is schema:
            return cached[1]
        cls = validator_for(schema, default=Draft202012Validator)
        try:
            cls.check_schema(schema)
            validator: Validator | None = cls(schema)
        except SchemaError as exc:
            logger.warning(
                "the inputSchema of %s is not a valid JSON Schema (%s); its arguments go unchecked", tool, exc.message
            )
            validator = None
        self._cache[tool] = (schema, validator)
        return validator
