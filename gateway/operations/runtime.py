"""Backends added, changed, removed, enabled and disabled while the gateway serves, kept across restarts.

The config file is the base; the runtime changes kept in the state directory (``gateway.operations.store``) are an
overlay on it, keyed by backend name: a definition added or replaced, a backend removed, a backend or a tool
switched off. When the file is edited later for a backend that has a runtime override, the later edit wins: the
override remembers the file's definition it was made over, and once the file says something else it is dropped
(one log line says so). A backend switched off stays off until switched on again, whatever its definition.

Every change is validated exactly as the config file is, by ``GatewayConfig`` over the whole list (names and
prefixes unique, each definition complete), and nothing changes when it fails. One change runs at a time. What a
change does to the running gateway is as small as it can be: a definition that differs only in what each call reads
(``IN_PLACE``) is swapped in under the open connection; any other difference closes the old connection after its
calls in flight (at most ``retire_grace`` seconds, then they end with ``-32050``) and opens a new one; no other
backend's connection and no client's session is touched, and clients hear ``list_changed`` for the lists that moved.

Replicas sharing a Redis share the changes: after each one the store's snapshot goes on the bus, kept for replicas
that start or reconnect later, and every other replica puts it in its own store and applies it as a reload does
(``_apply``), so its own clients hear ``list_changed`` from their own replica, once.

The virtual servers, composites and search change the same way (``gateway.operations.endpoints``); whatever
changes, the front then serves what the configuration says (``offer``): a view captures its backends' prefixes.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError

from gateway.composition.checks import problems
from gateway.config import BackendConfig, GatewayConfig
from gateway.core import DISABLED, Gateway
from gateway.errors import UnknownTarget
from gateway.front.app import VirtualServers
from gateway.operations.endpoints import SECTIONS, Endpoints, overlaid
from gateway.operations.errors import ChangeError
from gateway.operations.store import Store
from gateway.upstream.transports import Connector, open_transport

logger = logging.getLogger(__name__)
# The bus topic of runtime changes: a store's whole snapshot.
TOPIC = "runtime"
# What a running backend can take without a new connection: each call reads these afresh.
IN_PLACE = frozenset(
    {
        "prefix",
        "call_timeout",
        "tool_timeouts",
        "idempotent_tools",
        "required",
        "max_result_bytes",
        "oversized_result",
        "validate_arguments",
    }
)
# Settings a reload applies to the running gateway; any other that changed needs a restart (logged).
RELOADABLE = frozenset(
    {"backends", "start_timeout", "reconnect_min", "reconnect_max", "health_interval", "shutdown_grace", "retire_grace"}
    | set(SECTIONS)
)
_QUOTED = re.compile(r"'([a-z_]+)'")


class Runtime:
    """The running gateway's backends as the operator changes them."""

    def __init__(self, gateway: Gateway, store: Store, base: GatewayConfig) -> None:
        self.gateway = gateway
        self.store = store
        self.base = base
        self._lock = anyio.Lock()
        self.endpoints = Endpoints(self)
        # The front's virtual servers, once it serves (``offer`` keeps them as the configuration says).
        self.served: VirtualServers | None = None
        gateway.bus.on(TOPIC, self._heard)

    # -- reading ---------------------------------------------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any]:
        """The backend's status entry, with whether it is enabled and where its definition comes from."""
        entry = next((b for b in self.gateway.status()["backends"] if b["name"] == name), None)
        if entry is None:
            raise ChangeError("unknown_backend", f"no backend is named {name!r}")
        return {**entry, "enabled": name not in self.gateway.disabled, "source": self.source(name)}

    def source(self, name: str) -> str:
        """Where the backend's definition comes from: ``config`` (the file) or ``runtime`` (an operator's change)."""
        overridden = {o.name for o in self.store.overrides() if o.definition is not None}
        return "runtime" if name in overridden or name not in _names(self.base) else "config"

    # -- changes ---------------------------------------------------------------------------------------------

    async def add(self, definition: Any) -> dict[str, Any]:
        async with self._lock:
            name = _object(definition).get("name")
            if isinstance(name, str) and name in _names(self.gateway.config):
                raise ChangeError("backend_exists", f"a backend named {name!r} exists; PUT replaces it")
            backends = self._validated([*self.gateway.config.backends, definition])
            added = backends[-1]
            self.store.put(added.name, _dump(added), self._base_of(added.name))
            await self.gateway.set_backends(backends)
            await self.gateway.attach(added)
            logger.info("backend %s added at run time", added.name)
            await self.offer(self.gateway.config)
            await self._share()
        return self.describe(added.name)

    async def replace(self, name: str, definition: Any) -> dict[str, Any]:
        async with self._lock:
            current = self._current(name)
            definition = {"name": name, **_object(definition)}
            if definition["name"] != name:
                raise ChangeError("invalid", f"the body names {definition['name']!r}, the path {name!r}", "name")
            entries: list[Any] = [definition if b.name == name else b for b in self.gateway.config.backends]
            backends = self._validated(entries)
            new = next(b for b in backends if b.name == name)
            self.store.put(name, _dump(new), self._base_of(name))
            await self._replace(current, new, backends)
            logger.info("backend %s changed at run time", name)
            await self.offer(self.gateway.config)
            await self._share()
        return self.describe(name)

    async def remove(self, name: str) -> None:
        async with self._lock:
            self._current(name)
            self._validated([b for b in self.gateway.config.backends if b.name != name])
            if name in _names(self.base):
                self.store.put(name, None, self._base_of(name))
            else:
                self.store.drop(name)
            self.store.set_backend_enabled(name, True)
            await self._remove(name)
            logger.info("backend %s removed at run time", name)
            await self.offer(self.gateway.config)
            await self._share()

    async def set_enabled(self, name: str, enabled: bool) -> None:
        async with self._lock:
            current = self._current(name)
            self.store.set_backend_enabled(name, enabled)
            gateway = self.gateway
            if enabled and name in gateway.disabled:
                await gateway.attach(current)
            elif not enabled and name not in gateway.disabled:
                gateway.disabled.add(name)
                await gateway.detach(name, DISABLED, self._grace)
            logger.info("backend %s %s", name, "enabled" if enabled else "disabled")
            await self._share()

    async def set_tool_enabled(self, tool: str, enabled: bool) -> str:
        """Switch one tool on or off by name (canonical or strict); returns its canonical name."""
        async with self._lock:
            hidden = self.store.disabled_tools()
            canonical = tool if tool in hidden else self._canonical_tool(tool)
            self.store.set_tool_enabled(canonical, enabled)
            await self._hide_tools(self.store.disabled_tools())
            logger.info("tool %s %s", canonical, "enabled" if enabled else "disabled")
            await self._share()
        return canonical

    async def reload(self, config: GatewayConfig) -> None:
        """The config file changed: apply what differs from the running configuration, the overlay on top; log one
        line for each setting that takes a restart."""
        async with self._lock:
            for field in _changed_fields(self.base, config):
                if field.split(".")[0] not in RELOADABLE:
                    logger.warning("config reload: %s changed; it takes effect after a restart", field)
            self.base = config
            effective, _ = combine(config, self.store)
            settings = {key: getattr(config, key) for key in RELOADABLE - {"backends", *SECTIONS}}
            self.gateway.config = self.gateway.config.model_copy(update=settings)
            for upstream in self.gateway.upstreams.values():
                upstream.settings = self.gateway.config
            await self._converge(effective.backends, "config reloaded")
            await self._offer_checked(effective, "config reload")

    async def start(self) -> None:
        """Hide the tools switched off before the restart; take the other replicas' changes, if any."""
        await self._hide_tools(self.store.disabled_tools())
        shared = await self.gateway.bus.latest(TOPIC)
        if shared is not None:
            await self._heard(shared)

    async def _heard(self, snapshot: dict[str, Any]) -> None:
        """Another replica's changes: they become this one's, applied as a reload applies the file's."""
        async with self._lock:
            try:
                self.store.restore(snapshot)
            except ValueError as exc:
                logger.error("runtime changes from another replica ignored: %s", exc)
                return
            await self._apply()

    async def _share(self) -> None:
        await self.gateway.bus.publish(TOPIC, self.store.snapshot(), keep=True)

    @asynccontextmanager
    async def changing(self) -> AsyncIterator[None]:
        """One change at a time; the other replicas get it once it is made (not when it is refused)."""
        async with self._lock:
            yield
            await self._share()

    async def offer(self, config: GatewayConfig) -> None:
        """Run the virtual servers, composites and search of ``config`` (already checked), and have the front serve
        them."""
        update = {key: getattr(config, key) for key in SECTIONS}
        self.gateway.config = self.gateway.config.model_copy(update=update)
        if self.served is not None:
            await self.served.offer(self.gateway.config)

    async def _offer_checked(self, effective: GatewayConfig, why: str) -> None:
        """``offer`` the sections of ``effective`` if the listings show nothing wrong with them; else keep the
        running ones, with one log line naming each place."""
        candidate = self.gateway.config.model_copy(update={key: getattr(effective, key) for key in SECTIONS})
        found = problems(self.gateway, candidate)
        if found:
            logger.error("%s: servers, composites and search left as they were: %s", why, "; ".join(found))
            candidate = self.gateway.config
        await self.offer(candidate)

    # -- applying --------------------------------------------------------------------------------------------

    async def _apply(self) -> None:
        """Make the running gateway what the file and the store say: backends, which are off, hidden tools."""
        effective, disabled = combine(self.base, self.store)
        await self._converge(effective.backends, "changes from another replica applied")
        await self._offer_checked(effective, "changes from another replica")
        gateway = self.gateway
        for backend in gateway.config.backends:
            if backend.name in disabled and backend.name not in gateway.disabled:
                gateway.disabled.add(backend.name)
                await gateway.detach(backend.name, DISABLED, self._grace)
            elif backend.name not in disabled and backend.name in gateway.disabled:
                await gateway.attach(backend)
        await self._hide_tools(self.store.disabled_tools())

    async def _converge(self, backends: tuple[BackendConfig, ...], why: str) -> None:
        wanted = {b.name: b for b in backends}
        running = {b.name: b for b in self.gateway.config.backends}
        removed = [name for name in running if name not in wanted]
        changed = [name for name in running if name in wanted and running[name] != wanted[name]]
        added = [b for b in backends if b.name not in running]
        for name in removed:
            await self._remove(name)
        for name in changed:
            now = tuple(wanted[name] if b.name == name else b for b in self.gateway.config.backends)
            await self._replace(running[name], wanted[name], now)
        if added:
            await self.gateway.set_backends((*self.gateway.config.backends, *added))
            for backend in added:
                await self.gateway.attach(backend)
        if removed or changed or added:
            logger.info(
                "%s: backends added %s, removed %s, changed %s",
                why, [b.name for b in added] or "none", removed or "none", changed or "none",
            )  # fmt: skip

    async def _replace(self, old: BackendConfig, new: BackendConfig, backends: tuple[BackendConfig, ...]) -> None:
        gateway = self.gateway
        if _differs_beyond(old, new, IN_PLACE) and new.name not in gateway.disabled:
            await gateway.detach(new.name, "its definition was replaced", self._grace)
            await gateway.set_backends(backends)
            await gateway.attach(new)
        else:
            await gateway.set_backends(backends)

    async def _remove(self, name: str) -> None:
        gateway = self.gateway
        await gateway.set_backends(tuple(b for b in gateway.config.backends if b.name != name))
        if name not in gateway.disabled:
            await gateway.detach(name, "it was removed", self._grace)
        gateway.forget(name)

    async def _hide_tools(self, names: frozenset[str]) -> None:
        kinds = self.gateway.catalog.hide_tools(names)
        if kinds:
            await self.gateway.notifier.changed(kinds)

    # -- helpers ---------------------------------------------------------------------------------------------

    @property
    def _grace(self) -> float:
        config = self.gateway.config
        return config.shutdown_grace if config.retire_grace is None else config.retire_grace

    def _current(self, name: str) -> BackendConfig:
        found = next((b for b in self.gateway.config.backends if b.name == name), None)
        if found is None:
            raise ChangeError("unknown_backend", f"no backend is named {name!r}")
        return found

    def _canonical_tool(self, tool: str) -> str:
        try:
            route = self.gateway.catalog.resolve_tool(tool)
        except UnknownTarget:
            raise ChangeError("unknown_tool", f"no tool is named {tool!r}") from None
        prefix = self._current(route.backend).exposed_prefix
        return f"{prefix}/{route.original}" if prefix else route.original

    def _base_of(self, name: str) -> str:
        return _base(next((b for b in self.base.backends if b.name == name), None))

    def _validated(self, entries: list[Any]) -> tuple[BackendConfig, ...]:
        return validate(self.gateway.config, entries).backends


def validate(config: GatewayConfig, entries: Iterable[Any]) -> GatewayConfig:
    """``config`` with these backends, validated as a config file is; ``ChangeError`` names the field."""
    data = {key: getattr(config, key) for key in GatewayConfig.model_fields}
    try:
        return GatewayConfig.model_validate({**data, "backends": list(entries)})
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        raise ChangeError("invalid", message, _field(error["loc"], message)) from None


def combine(config: GatewayConfig, store: Store) -> tuple[GatewayConfig, frozenset[str]]:
    """The file's configuration with the runtime overlay on top, and the backends switched off.

    An override made over a definition the file no longer has is dropped: the file was edited since, and wins.
    An overlay that no longer fits the file (a prefix the file now uses too) is left out, with one log line.
    """
    in_file = {b.name: b for b in config.backends}
    backends: dict[str, Any] = dict(in_file)
    for override in store.overrides():
        if override.base != _base(in_file.get(override.name)):
            logger.warning(
                "backend %s: the config file changed it after its runtime change of %s; the file's definition applies",
                override.name,
                override.changed_at,
            )
            store.drop(override.name)
        elif override.definition is None:
            backends.pop(override.name, None)
        else:
            backends[override.name] = override.definition
    try:
        combined = validate(config, backends.values())
    except ChangeError as exc:
        logger.error("runtime changes left out: with the config file they are invalid: %s: %s", exc.field, exc)
        combined = config
    combined = overlaid(combined, config, store)
    names = _names(combined)
    return combined, frozenset(n for n in store.disabled_backends() if n in names)


@asynccontextmanager
async def operated(
    config: GatewayConfig, state_dir: Path | None, connect: Connector = open_transport
) -> AsyncIterator[Runtime]:
    """A running gateway with the runtime changes kept in ``state_dir`` applied, and the means to make more
    (``None``: changes last as long as the process)."""
    store = Store(state_dir)
    try:
        effective, disabled = combine(config, store)
        async with Gateway(effective, connect, disabled) as gateway:
            runtime = Runtime(gateway, store, config)
            await runtime.start()
            yield runtime
    finally:
        store.close()


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ChangeError("invalid", "expected a JSON object: one backend definition", "")
    return body


def _names(config: GatewayConfig) -> set[str]:
    return {b.name for b in config.backends}


def _dump(backend: BackendConfig) -> dict[str, Any]:
    return backend.model_dump(mode="json", exclude_defaults=True)


def _base(backend: BackendConfig | None) -> str:
    """The file's definition of a backend as the store keeps it, to tell later whether the file changed it."""
    return json.dumps(None if backend is None else _dump(backend), sort_keys=True)


def _differs_beyond(old: BackendConfig, new: BackendConfig, fields: frozenset[str]) -> bool:
    return any(getattr(old, key) != getattr(new, key) for key in BackendConfig.model_fields if key not in fields)


def _field(loc: tuple[int | str, ...], message: str) -> str:
    """The dotted path of the field at fault within one backend's definition; for a check across fields or
    across backends, the field its message names; for a virtual server the change leaves without its backend, the
    place in the server."""
    if loc[:1] == ("servers",):
        return "servers." + message.partition(": ")[0]
    within = [str(part) for part in loc[2:]] if len(loc) > 1 else []
    if within:
        return ".".join(within)
    if "prefixes" in message:
        return "prefix"
    if "names" in message:
        return "name"
    quoted = _QUOTED.search(message)
    return quoted.group(1) if quoted else "backends"


def _changed_fields(old: GatewayConfig, new: GatewayConfig) -> list[str]:
    """Top-level settings that differ, one level deeper for the grouped ones (``security.policy``)."""
    changed = []
    for key in GatewayConfig.model_fields:
        before, after = getattr(old, key), getattr(new, key)
        if before == after:
            continue
        if key == "security":
            changed += [
                f"{key}.{sub}" for sub in type(before).model_fields if getattr(before, sub) != getattr(after, sub)
            ]
        else:
            changed.append(key)
    return changed
