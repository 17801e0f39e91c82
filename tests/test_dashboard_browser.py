"""The dashboard in a real browser: ``cloudwar serve`` driven through Debian's Chromium by Playwright.

The server is started as a user would (the ``cloudwar serve`` command) on a free port of
127.0.0.1, with Solara's CDN pointed at a dead address: every front-end asset must come from the
local cache that ``scripts/dashboard-assets.sh`` fills, as it must on a machine without internet.

Set CLOUDWAR_DASHBOARD_SCREENSHOT=path to also keep the screenshot (docs/dashboard.png is made so),
CLOUDWAR_DASHBOARD_COMPARE_SCREENSHOT=path for the comparison of two runs
(docs/dashboard-compare.png), CLOUDWAR_DASHBOARD_HISTORY_SCREENSHOT=path for the history preset
with its actual points and an added event (docs/dashboard-history.png) and
CLOUDWAR_DASHBOARD_EVENTS_SCREENSHOT=path for the events timeline editor (docs/dashboard-events.png).
"""

from __future__ import annotations

import os
import re
import shlex
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
expect.set_options(timeout=TIMEOUT)  # a redraw of eight charts can take several seconds here


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


def stale(page: Page):
    return page.locator(".cloudwar-stale").first


def slider(page: Page, label: str):
    """The thumb of the slider labelled ``label`` (focus it and use the arrow keys, as a keyboard user would)."""
    return page.locator(f'.v-input:has(label:text-is("{label}")) [role="slider"]')


def open_strategy(page: Page, provider: str) -> None:
    page.locator(".v-expansion-panel-header", has_text=f"{provider}: ").click()


def type_param(page: Page, name: str, text: str) -> None:
    field = page.get_by_label(name, exact=True)
    field.fill(text)
    field.press("Enter")


def save_screenshot(page: Page, path: Path, variable: str) -> bytes:
    """A full-length screenshot of the page (the main area scrolls, so the viewport is made tall)."""
    size = page.viewport_size
    page.set_viewport_size({"width": 1600, "height": 2600})
    shot = page.screenshot(path=path, full_page=True)
    if os.environ.get(variable):
        Path(os.environ[variable]).write_bytes(shot)
    page.set_viewport_size(size)
    return shot


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

    shot = save_screenshot(page, tmp_path / "dashboard.png", "CLOUDWAR_DASHBOARD_SCREENSHOT")
    assert shot.startswith(b"\x89PNG") and len(shot) > 50_000

    # Controls take effect on Reset.
    seed = page.get_by_label("Random seed", exact=True)
    seed.fill("7")
    seed.press("Enter")
    # The controls have redrawn with the pending change before the preset's menu is opened (on a
    # loaded machine its option once never appeared: the click may have landed during that redraw).
    expect(stale(page)).to_contain_text("seed: 0 \u2192 7")
    choose(page, "Scenario preset", "calvano_duopoly")
    reset(page)
    expect(quarter(page)).to_have_text("Quarter 0 of 30")
    expect(page.locator(".cloudwar-summary-body")).to_contain_text("Preset calvano_duopoly, seed 7")
    step(page, "Quarter 1 of 30")

    # A bad value: marked pending and invalid, a message in the page on Reset, and the page still works.
    seed.fill("abc")
    seed.press("Enter")
    expect(stale(page)).to_contain_text("Pending changes are not valid yet: seed: expected a whole number")
    reset(page)
    expect(page.locator(".cloudwar-error")).to_contain_text("seed: expected a whole number >= 0, got 'abc'")
    seed.fill("7")
    seed.press("Enter")
    reset(page)
    expect(page.locator(".cloudwar-error")).to_have_count(0)
    expect(quarter(page)).to_have_text("Quarter 0 of 30")

    cdn = [(url, status) for url, status in responses if "/_solara/cdn/" in url]
    assert cdn and all(status in (200, 304) for _, status in cdn), [c for c in cdn if c[1] not in (200, 304)]
    packages = {re.search(r"/_solara/cdn/((?:@[^/]+/)?[^/@]+@[^/]+)/", url)[1] for url, _ in cdn}
    assert packages <= set(CDN_PACKAGES)
    assert elsewhere == []


def test_values_are_visible_changes_are_pending_and_only_the_presets_controls_show(page: Page, dashboard: str):
    open_dashboard(page, dashboard)
    expect(page.locator(".cloudwar-value-enterprises")).to_have_text("3,000")  # without dragging
    expect(page.locator(".cloudwar-value-alibaba_price_level")).to_have_text("x1.00 starting prices")
    expect(page.locator(".cloudwar-stale")).to_have_count(0)
    step(page, "Quarter 1 of 40")
    thumb = slider(page, "Enterprises")
    thumb.focus()
    thumb.press("ArrowRight")
    expect(page.locator(".cloudwar-value-enterprises")).to_have_text("3,500")
    expect(stale(page)).to_contain_text("enterprises: 3,000 \u2192 3,500")
    expect(stale(page)).to_contain_text("press Reset to apply")
    expect(quarter(page)).to_contain_text("Quarter 1 of 40")  # the run shown is the one before the change
    reset(page)
    expect(page.locator(".cloudwar-stale")).to_have_count(0)
    expect(page.locator(".cloudwar-summary-body")).to_contain_text("3,500 enterprises")

    # Another preset: its providers' strategies only, no Alibaba controls.
    expect(page.locator(".v-expansion-panel-header", has_text="Alibaba: ")).to_have_count(1)
    choose(page, "Scenario preset", "calvano_duopoly")
    expect(page.locator(".v-expansion-panel-header", has_text="Firm 1: ")).to_have_count(1)
    expect(page.locator(".v-expansion-panel-header", has_text="Alibaba: ")).to_have_count(0)
    expect(page.locator(".cloudwar-value-alibaba_price_level")).to_have_count(0)
    expect(page.get_by_label("Alibaba capex (x RMB 380bn / 3 years plan)", exact=True)).to_have_count(0)
    expect(stale(page)).to_contain_text("preset: baseline \u2192 calvano_duopoly")
    expect(page.get_by_text("Page 0", exact=True)).to_have_count(0)  # no SolaraViz tab or "Time:" noise
    expect(page.get_by_text(re.compile(r"^Time: "))).to_have_count(0)


def test_strategy_parameters_pin_compare_and_log_prices(page: Page, dashboard: str, tmp_path):
    open_dashboard(page, dashboard)
    for k in (1, 2, 3, 4):
        step(page, f"Quarter {k} of 40")
    expect(page.locator(".cloudwar-chart-text-prices-1")).to_contain_text("China AI: price. y: USD per")
    expect(page.locator(".cloudwar-chart-text-prices-1")).to_contain_text("log scale. x: 2025Q4 to 2026Q3")
    expect(page.locator(".cloudwar-chart-text-prices-2")).to_contain_text("linear scale")
    expect(page.locator(".cloudwar-chart-text-shares-2")).to_contain_text("rest of world cloud: revenue share")
    page.get_by_role("button", name="Pin this run").click()
    expect(page.locator(".cloudwar-pinned")).to_contain_text("Pinned: baseline, seed 0, quarter 4")
    pinned_src = chart_src(page, "shares-1")

    # "Alibaba stops cutting in 2026Q3": its harvest starts then, typed as a calendar quarter.
    open_strategy(page, "Alibaba")
    expect(page.get_by_label("price_cut", exact=True)).to_have_value("0.1")  # values shown, not only names
    type_param(page, "harvest_quarter", "2026Q3")
    expect(page.locator(".cloudwar-param-alibaba-harvest_quarter")).to_contain_text("step 4 = 2026Q3")
    expect(stale(page)).to_contain_text("Alibaba harvest_quarter: as in the preset \u2192 2026Q3 (step 4)")
    reset(page)
    expect(page.locator(".cloudwar-stale")).to_have_count(0)
    for k in (1, 2, 3, 4):
        step(page, f"Quarter {k} of 40")
    body = page.locator(".cloudwar-summary-body")
    expect(body).to_contain_text("Pinned \u2192 this run: Alibaba harvest_quarter: as in the preset \u2192 2026Q3")
    expect(page.locator("table.cloudwar-compare")).to_contain_text("Alibaba")
    expect(page.locator("table.cloudwar-compare")).to_contain_text("\u0394 EV (USD bn)")  # enterprise value paired
    expect(body).to_contain_text("This run minus the pinned run at quarter 4 (2026Q3)")
    expect(page.locator(".cloudwar-chart-text-shares-1")).to_contain_text("dashed: pinned run")
    assert chart_src(page, "shares-1") != pinned_src
    save_screenshot(page, tmp_path / "compare.png", "CLOUDWAR_DASHBOARD_COMPARE_SCREENSHOT")


def test_export_downloads_a_table_that_the_shown_command_reproduces(page: Page, dashboard: str, tmp_path):
    open_dashboard(page, dashboard)
    expect(page.get_by_text("Step the run first")).to_be_visible()
    thumb = slider(page, "Alibaba price level")
    thumb.focus()
    thumb.press("ArrowLeft")  # x0.95
    open_strategy(page, "Tencent")
    gpu = page.locator(".cloudwar-gpu-tencent-all")
    expect(gpu).to_contain_text("0.05 = 5% max net capacity growth per quarter")  # the preset's, with its unit
    gpu.locator("input").fill("0.025")  # export controls: GPU supply halved (5% -> 2.5%)
    gpu.locator("input").press("Enter")
    expect(gpu).to_contain_text("2.5% max net capacity growth per quarter")
    expect(stale(page)).to_contain_text("Tencent GPU supply: as in the preset \u2192 2.5% a quarter")
    reset(page)
    for k in (1, 2, 3):
        step(page, f"Quarter {k} of 40")

    with page.expect_download() as download:
        page.get_by_role("button", name="Table (CSV)").click()
    table = tmp_path / "dashboard.csv"
    download.value.save_as(table)
    with page.expect_download() as download:
        page.get_by_role("button", name="Charts (PNG)").click()
    figure = tmp_path / "charts.png"
    download.value.save_as(figure)
    assert figure.read_bytes().startswith(b"\x89PNG")

    command = page.locator(".cloudwar-command").inner_text()
    argv = shlex.split(command)
    assert argv[:2] == ["cloudwar", "run"] and "--quarters" in argv
    assert "providers.Tencent.gpu_supply.*=0.025" in argv
    argv[argv.index("--out") + 1] = str(tmp_path / "cli")
    cloudwar = Path(sys.executable).with_name("cloudwar")
    subprocess.run([str(cloudwar), *argv[1:]], check=True, capture_output=True, timeout=300)
    assert (tmp_path / "cli" / "results.csv").read_bytes() == table.read_bytes()


def test_history_preset_shows_actual_points_and_an_edited_events_timeline(page: Page, dashboard: str, tmp_path):
    open_dashboard(page, dashboard)
    choose(page, "Scenario preset", "history")
    reset(page)
    expect(quarter(page)).to_contain_text("Quarter 0 of 9")
    events = page.locator(".cloudwar-events")
    expect(events).to_contain_text("2023Q4 US export rules widened (A800/H800)")  # the preset's timeline
    expect(events).to_contain_text("providers.Baidu.gpu_supply.china = 0.1")

    # A bad event is refused in one line; a good one is pending until Reset.
    page.get_by_label("Event quarter", exact=True).fill("2024Q4")
    page.get_by_label("Event name", exact=True).fill("export controls tighten")
    events.locator("textarea").fill("providers.Nobody.gpu_supply = 0.01")
    page.get_by_role("button", name="Add event").click()
    expect(page.locator(".cloudwar-event-error")).to_contain_text("providers.Nobody.gpu_supply: no provider named")
    events.locator("textarea").fill("providers.Tencent.gpu_supply = 0.01")
    page.get_by_role("button", name="Add event").click()
    expect(page.locator(".cloudwar-event-error")).to_have_count(0)
    expect(events).to_contain_text("2024Q4 export controls tighten")
    expect(stale(page)).to_contain_text("2024Q4 export controls tighten")
    reset(page)
    expect(page.locator(".cloudwar-stale")).to_have_count(0)
    for k in range(1, 10):
        step(page, f"Quarter {k} of 9")
    expect(page.locator(".cloudwar-chart-text-margins")).to_contain_text("actual (history.csv)")
    expect(page.locator(".cloudwar-chart-text-shares-1")).to_contain_text("actual (history.csv)")
    expect(page.locator(".cloudwar-chart-text-shares-2")).not_to_contain_text("actual (history.csv)")
    save_screenshot(page, tmp_path / "history.png", "CLOUDWAR_DASHBOARD_HISTORY_SCREENSHOT")
    page.set_viewport_size({"width": 1600, "height": 4000})  # the whole sidebar in view: nothing covers the card
    shot = events.screenshot(path=tmp_path / "events.png")
    page.set_viewport_size({"width": 1600, "height": 1000})
    if os.environ.get("CLOUDWAR_DASHBOARD_EVENTS_SCREENSHOT"):
        Path(os.environ["CLOUDWAR_DASHBOARD_EVENTS_SCREENSHOT"]).write_bytes(shot)

    # The exported command carries the edited timeline and writes the same table.
    with page.expect_download() as download:
        page.get_by_role("button", name="Table (CSV)").click()
    table = tmp_path / "dashboard.csv"
    download.value.save_as(table)
    argv = shlex.split(page.locator(".cloudwar-command").inner_text())
    assert any(a.startswith("events=[") and "export controls tighten" in a for a in argv)
    argv[argv.index("--out") + 1] = str(tmp_path / "cli")
    cloudwar = Path(sys.executable).with_name("cloudwar")
    subprocess.run([str(cloudwar), *argv[1:]], check=True, capture_output=True, timeout=300)
    assert (tmp_path / "cli" / "results.csv").read_bytes() == table.read_bytes()

    # Removing an event is a pending change again.
    page.locator(".cloudwar-event-remove-0").click()
    expect(events).not_to_contain_text("US export rules widened")
    expect(stale(page)).to_contain_text("events:")
