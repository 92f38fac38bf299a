"""The JSON the dashboard's pages read (``/ui/api/...``) and its assets, on every backend, in-process.
The pages themselves run in a real browser in tests/ui."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from galerakv.server.app import App
from tests.api.test_auth import ADMIN, AUTH, READER, WRITER, bearer, secured  # noqa: F401 (a fixture)


async def test_the_page_and_its_assets_ship_in_the_package(client: httpx.AsyncClient) -> None:
    for path, kind in [("/ui", "text/html"), ("/ui/", "text/html"), ("/ui/app.js", "text/javascript"),
                       ("/ui/app.css", "text/css")]:
        r = await client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
    page = (await client.get("/ui")).text
    assert "http://" not in page and "https://" not in page, "nothing is fetched from elsewhere"
    r = await client.get("/ui/nothing-here")
    assert r.status_code == 404 and r.json()["code"] == "no_route"
    r = await client.post("/ui/api/me")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


async def test_without_auth_the_page_may_do_everything(client: httpx.AsyncClient, backend: str) -> None:
    assert (await client.get("/ui/api/me")).json() == {"auth": False, "name": None, "admin": True,
                                                        "scopes": {"*": "readwrite"}}
    await client.put("/v1/ns/ui_a/kv/k", content=b"x")
    await client.put("/v1/ns/ui_b/kv/k", content=b"y")
    found = (await client.get("/ui/api/namespaces")).json()["namespaces"]
    assert {"ui_a", "ui_b"} <= set(found)
    view = (await client.get("/ui/api/cluster")).json()
    assert view["server"]["backend"] == backend and view["server"]["ready"] is True
    if backend == "sqlite":
        assert view["kind"] == "sqlite" and view["file_bytes"] > 0 and view["revision"] >= 2
    else:  # in-process, no probe given: the server's own view of the nodes
        assert view["kind"] == "none"


async def test_tokens_on_the_dashboard(secured: httpx.AsyncClient) -> None:  # noqa: F811
    assert (await secured.get("/ui")).status_code == 200, "the page itself holds no data"
    for path in ("/ui/api/me", "/ui/api/cluster", "/ui/api/traffic", "/ui/api/namespaces"):
        assert (await secured.get(path)).status_code == 401, path
    me = (await secured.get("/ui/api/me", headers=bearer(READER))).json()
    assert me == {"auth": True, "name": "reader", "admin": False, "scopes": {"app": "read"}}
    await secured.put("/v1/ns/app/kv/k", content=b"x", headers=bearer(WRITER))
    # the reader sees only the namespaces its scopes name; the writer ("*" = read) every one
    assert (await secured.get("/ui/api/namespaces", headers=bearer(READER))).json()["namespaces"] == ["app"]
    assert "app" in (await secured.get("/ui/api/namespaces", headers=bearer(WRITER))).json()["namespaces"]
    # file paths and addresses only for an admin token
    view = (await secured.get("/ui/api/cluster", headers=bearer(READER))).json()
    admin = (await secured.get("/ui/api/cluster", headers=bearer(ADMIN))).json()
    assert "path" not in view and "address" not in str(view)
    if admin["kind"] == "sqlite":
        assert admin["path"].endswith("kv.sqlite3")


async def test_the_traffic_ring_counts_requests_but_not_its_own(make_app: Callable[..., App]) -> None:
    app = make_app()
    assert app.dashboard is not None
    app.dashboard.traffic.interval = 0.05
    await app.startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            for i in range(10):
                await c.put(f"/v1/ns/t/kv/{i}", content=b"x")
            await c.get("/v1/ns/t/kv/missing")
            for _ in range(5):
                await c.get("/ui/api/traffic")
            await asyncio.sleep(0.2)
            data = (await c.get("/ui/api/traffic")).json()
    finally:
        await app.shutdown()
    assert data["requests_total"] == 11
    assert sum(s["errors"].get("not_found", 0) for s in data["samples"]) == 1
    assert any(s["p99_ms"] for s in data["samples"])


async def test_the_dashboard_can_be_off(make_app: Callable[..., App]) -> None:
    app = make_app(ui={"enabled": False})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/ui/api/me")
    assert r.status_code == 404 and "ui.enabled" in r.json()["detail"]
