"""Access lines for every request, not the calls alone: a list page the SDK answers and the same page answered
again from the cache (the 2026 fast path, and a 2025 session's cached pages) each get their line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.telemetry import access_log
from tests.support.inproc import http_client, running_gateway, serving
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio


@pytest.fixture
def access_on(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Access lines on, as with ``--log-format json``, and captured."""
    access_log.enable(True)
    try:
        with caplog.at_level("INFO", logger="gateway.access"):
            yield
    finally:
        access_log.enable(False)


@pytest.mark.parametrize(("mode", "era"), [("legacy", "2025"), ("2026-07-28", "2026")])
async def test_a_cached_list_page_has_its_access_line_like_the_first(
    mode: str, era: str, access_on: None, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        running_gateway({"toy": build()}) as gateway,
        serving(gateway) as url,
        http_client(url, mode=mode) as client,
    ):
        first = await client.list_tools()
        again = await client.list_tools()
    assert first == again
    found = [getattr(r, access_log.ACCESS) for r in caplog.records if r.name == "gateway.access"]
    listed = [line for line in found if line["method"] == "tools/list"]
    assert len(listed) == 2
    assert all(line["era"] == era and line["outcome"] == "ok" for line in listed)
    assert all(line["principal"] == "anonymous:anonymous" for line in listed)
