"""The stack's stand-in for Static Web Apps: files at /, staticwebapp.config.json applied, /api
untouched."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from local_host.server import host_app, startup_listing
from local_stack.__main__ import DEFAULT_SITE, stack_argument_parser
from local_stack.static_site import StaticSite, attach_site, route_pattern
from tests.stack import REPO_ROOT

# The local host's HTTP test app; its ping function answers "pong <name>".
HTTP_APP = REPO_ROOT / "tests" / "apps" / "http_app"


@pytest.fixture(autouse=True)
def _each_test_restores_imports(restored_imports: None) -> None:
    """Each test here hosts an app (tests/conftest.py puts the repository's own back)."""


CONFIG = {
    "navigationFallback": {"rewrite": "/index.html", "exclude": ["/css/*", "/*.{png,ico}"]},
    "routes": [
        {"route": "/css/*", "headers": {"cache-control": "public, max-age=300"}},
        {"route": "/*.svg", "headers": {"X-Picture": "yes", "Content-Security-Policy": ""}},
        {"route": "/docs/index.html", "headers": {"X-Docs": "yes"}},
    ],
    "globalHeaders": {"Cache-Control": "no-cache", "Content-Security-Policy": "default-src 'self'"},
    "mimeTypes": {".map": "application/json", ".TXT": "text/plain; charset=utf-8"},
}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "site.css").write_text("h1 {}")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.html").write_text("<h1>docs</h1>")
    (tmp_path / "logo.svg").write_text("<svg/>")
    (tmp_path / "app.js.map").write_text("{}")
    (tmp_path / "notes.txt").write_text("notes")
    (tmp_path / "staticwebapp.config.json").write_text(json.dumps(CONFIG))
    return tmp_path


async def host_with_site(site: Path | None, route_prefix: str = "api") -> Any:
    """The test app on the host, with the site beside it as `make run` serves it."""
    web_app = await host_app(HTTP_APP, route_prefix=route_prefix)
    if site is not None:
        attach_site(web_app, site, route_prefix)
    return web_app


def with_site(scenario: Callable[[TestClient], Awaitable[Any]], site: Path | None) -> Any:
    async def run() -> Any:
        web_app = await host_with_site(site)
        async with TestClient(TestServer(web_app)) as client:
            return await scenario(client)

    return asyncio.run(run())


async def fetch(client: TestClient, path: str, method: str = "GET") -> tuple[int, dict, str]:
    response = await client.request(method, path)
    return response.status, dict(response.headers), await response.text()


def test_files_are_served_with_global_and_route_headers(site: Path) -> None:
    async def scenario(client: TestClient) -> list[tuple[int, dict, str]]:
        return [await fetch(client, path) for path in ("/", "/css/site.css", "/logo.svg")]

    home, stylesheet, logo = with_site(scenario, site)
    assert home[0] == 200
    assert home[2] == "<h1>home</h1>"
    assert home[1]["Cache-Control"] == "no-cache"
    assert home[1]["Content-Security-Policy"] == "default-src 'self'"
    assert home[1]["Content-Type"].startswith("text/html")
    # A route's header overrides the global one of the same name; the others stay.
    assert stylesheet[1]["Cache-Control"] == "public, max-age=300"
    assert stylesheet[1]["Content-Security-Policy"] == "default-src 'self'"
    assert stylesheet[1]["Content-Type"].startswith("text/css")
    assert logo[1]["X-Picture"] == "yes"
    assert logo[1]["Cache-Control"] == "no-cache"
    assert "Content-Security-Policy" not in logo[1]  # an empty value removes a header


def test_mime_types_of_the_config_win(site: Path) -> None:
    async def scenario(client: TestClient) -> list[str]:
        return [
            (await fetch(client, path))[1]["Content-Type"] for path in ("/app.js.map", "/notes.txt")
        ]

    assert with_site(scenario, site) == ["application/json", "text/plain; charset=utf-8"]


def test_a_folder_serves_its_index(site: Path) -> None:
    async def scenario(client: TestClient) -> list[tuple[int, dict, str]]:
        return [await fetch(client, path) for path in ("/docs/", "/docs", "/docs/index.html")]

    answers = with_site(scenario, site)
    for status, _, body in answers:
        assert (status, body) == (200, "<h1>docs</h1>")
    assert answers[2][1]["X-Docs"] == "yes"


def test_paths_that_are_no_file_fall_back_to_the_app_page(site: Path) -> None:
    async def scenario(client: TestClient) -> list[tuple[int, dict, str]]:
        return [await fetch(client, path) for path in ("/draw/again", "/history?page=2")]

    for status, headers, body in with_site(scenario, site):
        assert (status, body) == (200, "<h1>home</h1>")
        assert headers["Content-Security-Policy"] == "default-src 'self'"


@pytest.mark.parametrize(
    "path",
    ["/css/missing.css", "/favicon.ico", "/css/%00.css", "/css/" + "a" * 300 + ".css"],
)
def test_excluded_paths_that_are_no_file_are_404(site: Path, path: str) -> None:
    async def scenario(client: TestClient) -> tuple[int, dict, str]:
        return await fetch(client, path)

    status, headers, body = with_site(scenario, site)
    assert status == 404
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["detail"] == "The site has no such file."
    assert "css/" not in body  # the request's path is not echoed
    assert headers["Content-Security-Policy"] == "default-src 'self'"


# Names the file system refuses: a null byte (ValueError), a segment over NAME_MAX (OSError).
@pytest.mark.parametrize("name", ["%00", "a" * 300])
def test_names_the_file_system_refuses_are_no_file(
    site: Path, tmp_path_factory: pytest.TempPathFactory, name: str
) -> None:
    async def scenario(client: TestClient) -> list[tuple[int, dict, str]]:
        return [await fetch(client, f"/{name}"), await fetch(client, f"/docs/{name}/x")]

    for status, _, body in with_site(scenario, site):
        assert (status, body) == (200, "<h1>home</h1>")  # the navigation fallback

    # Without a config there is no fallback: a 404 that does not repeat the path.
    (status, _, body), _ = with_site(scenario, tmp_path_factory.mktemp("no-config"))
    assert status == 404
    assert json.loads(body)["detail"] == "The site has no such file."
    assert name not in body


def test_the_config_file_and_files_outside_the_folder_are_never_served(site: Path) -> None:
    (site.parent / "secret.txt").write_text("secret")
    paths = ["/staticwebapp.config.json", f"/..%2f{site.name}%2f..%2fsecret.txt"]

    async def scenario(client: TestClient) -> list[tuple[int, dict, str]]:
        return [await fetch(client, path) for path in paths]

    for status, _, body in with_site(scenario, site):
        assert (status, body) == (200, "<h1>home</h1>")  # the navigation fallback


def test_the_site_is_read_only(site: Path) -> None:
    async def scenario(client: TestClient) -> list[tuple[int, dict, str]]:
        return [await fetch(client, "/", "POST"), await fetch(client, "/", "HEAD")]

    (post_status, post_headers, _), (head_status, _, head_body) = with_site(scenario, site)
    assert post_status == 405
    assert set(post_headers["Allow"].split(",")) == {"GET", "HEAD"}
    assert (head_status, head_body) == (200, "")


def test_the_api_is_untouched_by_the_site(site: Path) -> None:
    async def scenario(client: TestClient) -> list[tuple[int, dict, str]]:
        paths = ["/api/ping?name=site", "/api/missing", "/api", "/API/missing"]
        return [await fetch(client, path) for path in paths] + [
            await fetch(client, "/api/missing", "POST")
        ]

    ping, missing, bare_prefix, upper_case, missing_post = with_site(scenario, site)
    assert ping[:1] + ping[2:] == (200, "pong site")
    assert "Content-Security-Policy" not in ping[1]
    for status, headers, body in (missing, bare_prefix, upper_case, missing_post):
        assert status == 404
        assert headers["Content-Type"] == "application/problem+json"
        assert json.loads(body)["detail"] == "No function is served at this path."


def test_without_a_site_nothing_is_served_at_the_root() -> None:
    async def scenario(client: TestClient) -> int:
        return (await fetch(client, "/"))[0]

    assert with_site(scenario, None) == 404


def test_a_site_needs_a_route_prefix(site: Path) -> None:
    with pytest.raises(ValueError, match="route prefix"):
        asyncio.run(host_with_site(site, route_prefix=""))


def test_startup_listing_names_the_site(site: Path) -> None:
    web_app = asyncio.run(host_with_site(site))
    listing = startup_listing(web_app, "http://localhost:7071")
    assert f"Site: http://localhost:7071/ (from {site.resolve()})" in listing.splitlines()


@pytest.mark.parametrize(
    ("route", "matching", "not_matching"),
    [
        ("/index.html", ["/index.html", "/INDEX.HTML"], ["/index.htm", "/x/index.html"]),
        ("/css/*", ["/css/", "/css/a/b.css"], ["/css", "/style.css"]),
        ("/*.{png,jpg}", ["/a.png", "/img/b.JPG"], ["/a.gif", "/png"]),
        ("/a+b(c)", ["/a+b(c)"], ["/aab(c)"]),
    ],
)
def test_route_patterns(route: str, matching: list[str], not_matching: list[str]) -> None:
    pattern = route_pattern(route)
    assert all(pattern.fullmatch(path) for path in matching)
    assert not any(pattern.fullmatch(path) for path in not_matching)


def test_a_folder_without_config_is_served_plainly(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("plain")

    async def scenario(client: TestClient) -> list[tuple[int, dict, str]]:
        return [await fetch(client, "/"), await fetch(client, "/elsewhere")]

    (status, headers, body), (missing_status, _, _) = with_site(scenario, tmp_path)
    assert (status, body) == (200, "plain")
    assert "Content-Security-Policy" not in headers
    assert missing_status == 404  # no navigation fallback without a config


def test_command_line_site_options(tmp_path: Path) -> None:
    def site_of(argv: list[str]) -> Path | None:
        return stack_argument_parser().parse_args(argv).site

    assert site_of([]) == DEFAULT_SITE
    assert DEFAULT_SITE == REPO_ROOT / "static-web"
    assert site_of(["--no-site"]) is None
    assert site_of(["--site", str(tmp_path)]) == tmp_path
    with pytest.raises(SystemExit):
        site_of(["--site", str(tmp_path / "missing")])


def test_the_sites_own_config_allows_only_the_site_and_its_api() -> None:
    config = StaticSite(REPO_ROOT / "static-web", "api")
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in config.headers_for("/").get("Content-Security-Policy", "").split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["connect-src"] == "'self'"  # config.js's default API base is same-origin
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert config.headers_for("/js/app.js")["Cache-Control"].startswith("public")
    assert config.headers_for("/index.html")["Cache-Control"] == "no-cache"
    assert config.fallback == "/index.html"
    assert any(pattern.fullmatch("/js/missing.js") for pattern in config.fallback_exclude)
