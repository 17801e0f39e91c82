"""The dashboard in a real browser: ``cloudwar serve`` driven through Debian's Chromium by Playwright.

The server is started as a user would (the ``cloudwar serve`` command) on a free port of
127.0.0.1, with Solara's CDN pointed at a dead address: every front-end asset must come from the
local cache that ``scripts/dashboard-assets.sh`` fills, as it must on a machine without internet.

Set CLOUDWAR_DASHBOARD_SCREENSHOT=path to also keep the screenshot (docs/dashboard.png is made so).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page, expect

from cloudwar.dashboard.serve import CDN_PACKAGES, missing_assets

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
CHARTS = ["shares-1", "shares-2", "margins", "network", "prices-1", "prices-2", "utilisation", "cash-flow"]
TIMEOUT = 60_000  # ms; a quarter takes about a second on a busy two-core machine


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright launches Debian's Chromium (Playwright cannot download browsers here)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium not found: scripts/setup.sh --test installs Debian's chromium")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1600, "height": 1000}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """URL of a running ``cloudwar serve`` (stopped after the module's tests)."""
    missing = missing_assets()
    if missing:
        pytest.fail(f"dashboard assets not cached ({', '.join(missing)}): run scripts/dashboard-assets.sh")
    port = free_port()
    log_path = tmp_path_factory.mktemp("dashboard") / "server.log"
    env = {**os.environ, "SOLARA_ASSETS_CDN": "http://127.0.0.1:9/npm/"}  # nothing from the internet
    cloudwar = Path(sys.executable).with_name("cloudwar")
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [cloudwar, "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"cloudwar serve did not come up:\n{log_path.read_text()}")
            time.sleep(0.25)  # polling the port until the server answers
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def open_dashboard(page: Page, url: str) -> None:
    page.set_default_timeout(TIMEOUT)
    page.goto(url)
    for name in CHARTS:
        expect(page.locator(f"img.cloudwar-chart-{name}")).to_be_visible(timeout=TIMEOUT)


def quarter(page: Page):
    return page.locator(".cloudwar-quarter")


def step(page: Page, expected: str) -> None:
    page.get_by_role("button", name="Step", exact=True).click()
    expect(quarter(page)).to_contain_text(expected, timeout=TIMEOUT)


def choose(page: Page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click(force=True)  # vuetify's select: the input sits under a cover
    page.get_by_role("option", name=option, exact=True).click()


def reset(page: Page) -> None:
    page.get_by_role("button", name="Reset", exact=True).click()


def chart_src(page: Page, name: str) -> str | None:
    return page.locator(f"img.cloudwar-chart-{name}").get_attribute("src")


def test_dashboard_steps_resets_and_reports_bad_controls(page: Page, browser: Browser, dashboard: str, tmp_path):
    responses: list[tuple[str, int]] = []
    elsewhere: list[str] = []
    page.on("response", lambda r: responses.append((r.url, r.status)))

    def outside(request) -> None:
        where = urlparse(request.url)
        if where.scheme in ("http", "https", "ws", "wss") and where.hostname != "127.0.0.1":
            elsewhere.append(request.url)

    page.on("request", outside)

    open_dashboard(page, dashboard)
    expect(quarter(page)).to_have_text("Quarter 0 of 40")
    before = {name: chart_src(page, name) for name in ("shares-1", "margins", "cash-flow")}
    for k in (1, 2, 3):
        step(page, f"Quarter {k} of 40")
    expect(page.locator(".cloudwar-leaders")).to_contain_text("Leaders: China AI:")
    for name, src in before.items():
        expect(page.locator(f"img.cloudwar-chart-{name}")).not_to_have_attribute("src", src or "")

    # A second browser session has its own model: it starts at quarter 0 and moves only itself.
    other_context = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        other = other_context.new_page()
        open_dashboard(other, dashboard)
        expect(quarter(other)).to_have_text("Quarter 0 of 40")
        step(other, "Quarter 1 of 40")
    finally:
        other_context.close()
    expect(quarter(page)).to_contain_text("Quarter 3 of 40")

    page.set_viewport_size({"width": 1600, "height": 2400})
    shot = page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
    assert shot.startswith(b"\x89PNG") and len(shot) > 50_000
    if os.environ.get("CLOUDWAR_DASHBOARD_SCREENSHOT"):
        Path(os.environ["CLOUDWAR_DASHBOARD_SCREENSHOT"]).write_bytes(shot)
    page.set_viewport_size({"width": 1600, "height": 1000})

    # Controls take effect on Reset.
    seed = page.get_by_label("Random seed", exact=True)
    seed.fill("7")
    seed.press("Enter")
    choose(page, "Scenario preset", "calvano_duopoly")
    reset(page)
    expect(quarter(page)).to_have_text("Quarter 0 of 30")
    expect(page.locator(".cloudwar-summary-body")).to_contain_text("Preset calvano_duopoly, seed 7")
    step(page, "Quarter 1 of 30")

    # A combination the scenario rejects: a message in the page, and the page still works.
    choose(page, "Alibaba", "best_response")
    reset(page)
    expect(page.locator(".cloudwar-error")).to_contain_text("has no provider named 'Alibaba'")
    choose(page, "Alibaba", "preset's")
    reset(page)
    expect(page.locator(".cloudwar-error")).to_have_count(0)
    expect(quarter(page)).to_have_text("Quarter 0 of 30")

    cdn = [(url, status) for url, status in responses if "/_solara/cdn/" in url]
    assert cdn and all(status in (200, 304) for _, status in cdn), [c for c in cdn if c[1] not in (200, 304)]
    packages = {re.search(r"/_solara/cdn/((?:@[^/]+/)?[^/@]+@[^/]+)/", url)[1] for url, _ in cdn}
    assert packages <= set(CDN_PACKAGES)
    assert elsewhere == []
