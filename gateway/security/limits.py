"""Budgets and bounds: rate limits per principal and per tool, JSON nesting depth, and result sizes.

Rate limits are token buckets (pyrate-limiter's ``TokenBucket``): ``burst`` calls at once, refilled at ``rate``
per second. Budgets live in memory by default; with a ``redis://`` store every replica draws on the same budget
(the bucket update runs as one Lua script, so it is atomic across replicas). If the store cannot be reached the
call goes ahead and the failure is logged: the limiter protects backends, it must not take the gateway down.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar, cast

from mcp import types
from pyrate_limiter import Decision, InMemoryStateStore, Rate, RedisStateStore, StateStore, TokenBucket

from gateway.config import BackendConfig, LimitsConfig, RateConfig
from gateway.errors import ConfigError, RateLimited, ResultTooLarge
from gateway.principal import Principal

ResultT = TypeVar("ResultT", bound=types.Result)
logger = logging.getLogger(__name__)
MAX_BUCKETS = 10_000
KEY_PREFIX = "mcp-gateway:rate"
TRUNCATED = "[truncated by the gateway: the result exceeded {limit} bytes]"


class RateLimiter:
    """Charges one call to the principal's bucket and, when the tool has its own limit, to the tool's."""

    def __init__(self, config: LimitsConfig, clock: Callable[[], float] | None = None) -> None:
        self._config = config
        url = config.store.get_secret_value()
        self._redis = _redis(url) if url != "memory" else None
        # Replicas share a Redis budget, so they share the wall clock; alone, a monotonic clock cannot jump.
        self._clock = clock or (time.time if self._redis is not None else time.monotonic)
        self._stores: OrderedDict[str, StateStore] = OrderedDict()
        self._algorithm = TokenBucket()

    @property
    def active(self) -> bool:
        return self._config.per_principal is not None or bool(self._config.per_tool)

    async def hit(self, principal: Principal, tool: str | None = None, shown: str | None = None) -> None:
        """Spend one token from each bucket that applies; ``RateLimited`` says when the next call fits, naming the
        tool as the client wrote it (``shown``) rather than the canonical name its budget is kept under."""
        # Buckets are keyed by the principal's key: a JWT subject never spends an API-key principal's budget.
        key = principal.key
        budgets = [(f"{principal.name} on {shown or tool}", f"{key}\n{tool}", self._config.per_tool.get(tool or ""))]
        budgets.append((repr(principal.name), key, self._config.per_principal))
        for label, key, budget in budgets:
            if budget is not None:
                await self._spend(label, key, budget)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def _spend(self, label: str, key: str, budget: RateConfig) -> None:
        rate = Rate(round(budget.rate * 1000), 1_000_000, burst=budget.burst)
        try:
            decision = await _decided(self._store(key).check(self._algorithm, [rate], self._now(), 1))
        except Exception as exc:  # a store outage must not refuse every call; see the module docstring
            logger.warning("rate-limit store unavailable, call not counted: %s", type(exc).__name__)
            return
        if not decision.allowed:
            wait_ms = decision.retry_after_ms if decision.retry_after_ms is not None else 1000 / budget.rate
            raise RateLimited(label, max(wait_ms, 1) / 1000)

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def _store(self, key: str) -> StateStore:
        store = self._stores.get(key)
        if store is None:
            name = f"{KEY_PREFIX}:{key}"
            store = InMemoryStateStore() if self._redis is None else RedisStateStore(self._redis, name)
            self._stores[key] = store
            if len(self._stores) > MAX_BUCKETS:
                self._stores.popitem(last=False)
        else:
            self._stores.move_to_end(key)
        return store


async def _decided(outcome: Any) -> Decision:
    """A store answers at once (memory) or with an awaitable (Redis)."""
    decision = await outcome if hasattr(outcome, "__await__") else outcome
    assert isinstance(decision, Decision)
    return decision


def _redis(url: str) -> Any:
    try:
        from redis.asyncio import Redis
    except ImportError:
        raise ConfigError(
            "security.limits.store: a redis:// store needs the redis package (mcp-gateway[redis])"
        ) from None
    return Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def too_deep(value: Any, limit: int) -> bool:
    """Whether JSON nests deeper than ``limit`` (``{}`` is depth 1); iterative, so no input can exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def result_size(result: types.Result) -> int:
    return len(result.model_dump_json(by_alias=True, exclude_none=True).encode())


def bounded(result: ResultT, backend: BackendConfig) -> ResultT:
    """The result if it fits the backend's ``max_result_bytes``; else truncated (tool results, when configured)
    or refused with ``ResultTooLarge``."""
    limit = backend.max_result_bytes
    size = result_size(result)
    if size <= limit:
        return result
    if backend.oversized_result == "truncate" and isinstance(result, types.CallToolResult):
        return cast(ResultT, _truncated(result, limit))
    raise ResultTooLarge(backend.name, size, limit)


def _truncated(result: types.CallToolResult, limit: int) -> types.CallToolResult:
    """Text blocks cut to fit, with a notice; whatever does not fit is dropped. A structured result that had to
    go makes it an error, since the client would otherwise find it missing."""
    notice = types.TextContent(type="text", text=TRUNCATED.format(limit=limit))
    kept = result.model_copy(update={"content": [notice], "structured_content": None})
    if result.structured_content is not None:
        with_structure = kept.model_copy(update={"structured_content": result.structured_content})
        kept = with_structure if result_size(with_structure) <= limit else kept.model_copy(update={"is_error": True})
    budget = limit - result_size(kept)
    content: list[types.ContentBlock] = []
    for block in result.content:
        size = _block_size(block)
        if size <= budget:
            content.append(block)
            budget -= size
            continue
        if isinstance(block, types.TextContent) and budget > 64:
            content.append(block.model_copy(update={"text": _cut(block.text, budget - 64)}))
        break
    return kept.model_copy(update={"content": [*content, notice]})


def _block_size(block: types.ContentBlock) -> int:
    return len(block.model_dump_json(by_alias=True, exclude_none=True).encode()) + 1


def _cut(text: str, size: int) -> str:
    """At most ``size`` bytes of JSON-escaped text, cut on a character boundary."""
    return text.encode()[: max(size // 2, 0)].decode(errors="ignore")
