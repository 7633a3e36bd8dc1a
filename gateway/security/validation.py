"""Tool arguments checked against the tool's ``inputSchema`` before the call leaves the gateway, for the backends
whose operator turned it on (``validate_arguments``; off by default, the backend being the authority on its own
arguments).

The schema's ``$schema`` picks the dialect (2020-12 when absent, as MCP specifies; draft 4, 6, 7 and 2019-09 are
recognised). A schema is a backend's word, so its ``$ref``s resolve only inside the schema itself (and the bundled
metaschemas): nothing is ever fetched, over the network or from a file, or a backend could make the gateway send
requests wherever it likes. References are looked up only when the arguments reach them; one that names anything
outside the schema refuses the call (``InvalidArguments``), since arguments the gateway cannot check are not
forwarded as if they had been checked. A schema that is not valid JSON Schema at all is logged once and the call
goes ahead unchecked: the backend still validates, and a backend's odd schema must not make its tool unusable.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable

from gateway.errors import InvalidArguments

logger = logging.getLogger(__name__)


def _refuse(uri: str) -> NoReturn:
    """The registry's ``retrieve``: no URI is fetched, whatever its scheme."""
    raise NoSuchResource(uri)


# Each validator registers its schema under the schema's own id (as its root) on top of this empty registry.
ISOLATED: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]  # an attrs alias mypy misses


class ArgumentValidator:
    """Compiled validators per tool, rebuilt when the backend's schema object changes."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[dict[str, Any], Validator | None]] = {}
        self._warned: set[str] = set()

    def check(
        self, tool: str, schema: dict[str, Any] | None, arguments: dict[str, Any] | None, *, shown: str | None = None
    ) -> None:
        """Raise ``InvalidArguments`` naming the JSON path of the most relevant failure, and the tool as the client
        named it (``shown``; ``tool``, the canonical name, keys the compiled validators and the log)."""
        validator = self._validator(tool, schema) if schema is not None else None
        if validator is None:
            return
        try:
            error = best_match(validator.iter_errors(dict(arguments or {})))
        except Unresolvable as exc:
            self._warn(tool, exc.ref)
            problem = f"its inputSchema refers to {exc.ref!r} outside itself, which the gateway does not resolve"
            raise InvalidArguments(shown or tool, "$", problem) from None
        if error is not None:
            raise InvalidArguments(shown or tool, error.json_path, error.message)

    def _validator(self, tool: str, schema: dict[str, Any]) -> Validator | None:
        cached = self._cache.get(tool)
        if cached is not None and cached[0] is schema:
            return cached[1]
        cls = validator_for(schema, default=Draft202012Validator)
        try:
            cls.check_schema(schema)
            validator: Validator | None = cls(schema, registry=ISOLATED)
        except SchemaError as exc:
            logger.warning(
                "the inputSchema of %s is not a valid JSON Schema (%s); its arguments go unchecked", tool, exc.message
            )
            validator = None
        self._cache[tool] = (schema, validator)
        return validator

    def _warn(self, tool: str, ref: str) -> None:
        if tool not in self._warned:
            self._warned.add(tool)
            logger.warning(
                "the inputSchema of %s refers to %r outside itself; calls that reach it are refused", tool, ref
            )
