"""The dashboard (cloudwar.dashboard.*) without a browser: controls, the session model, charts, and the page
rendered with Solara's own test renderer; and the ``cloudwar serve`` command (cloudwar.dashboard.serve)."""

from __future__ import annotations

import dataclasses
import re
import socket
import subprocess
import sys
from pathlib import Path

import ipyvuetify as v
import ipywidgets
import numpy as np
import pandas as pd
import pytest
import solara
from solara.widgets import HTML

from cloudwar.cli import main
from cloudwar.dashboard import app, serve
from cloudwar.dashboard.charts import CHARTS
from cloudwar.dashboard.controls import (
    DEFAULT_ENTERPRISES,
    PRESETS_OWN,
    PRESETS_RULE,
    STRATEGY_KEY,
    Controls,
    model_params,
)
from cloudwar.dashboard.session import NETWORK_SAMPLE, MarketSession, snowball_sample
from cloudwar.dashboard.summary import calendar_quarter, summary_html, summary_table
from cloudwar.model.market import CloudMarket
from cloudwar.scenario import load_scenario
from cloudwar.strategies import REGISTRY, CostPlus, FixedPrice, Strategy

BASELINE = load_scenario("baseline")


def provider(session: MarketSession, name: str):
    return next(p for p in session.market.providers_list if p.name == name)


# --------------------------------------------------------------------------------------------
# Controls and the session model
# --------------------------------------------------------------------------------------------
def test_default_controls_run_the_shipped_preset():
    assert Controls().overrides(BASELINE) == {"enterprises": DEFAULT_ENTERPRISES}
    session = MarketSession()
    reference = CloudMarket("baseline", rng=0, overrides={"enterprises": DEFAULT_ENTERPRISES})
    for _ in range(3):
        session.step()
        reference.step()
    assert session.error is None and session.quarter == 3
    pd.testing.assert_frame_equal(session.results(), reference.results())


def test_alibaba_price_level_scales_every_starting_price():
    base = MarketSession()
    cheap = MarketSession(alibaba_price_level=0.5)
    np.testing.assert_allclose(provider(cheap, "Alibaba").prices, 0.5 * provider(base, "Alibaba").prices)
    np.testing.assert_array_equal(provider(cheap, "Tencent").prices, provider(base, "Tencent").prices)


def test_capex_plan_scales_the_committed_plan_of_alibabas_playbook():
    session = MarketSession(alibaba_capex_plan="2x")
    strategy = provider(session, "Alibaba").strategy
    assert hasattr(strategy, "capex_plan"), "the baseline's Alibaba plays a playbook with a committed plan"
    assert strategy.capex_plan == pytest.approx(2 * 380e9)  # RMB, twice the announced plan
    assert type(strategy) is type(provider(MarketSession(), "Alibaba").strategy)  # pricing kept
    assert provider(session, "Tencent").strategy == provider(MarketSession(), "Tencent").strategy
    assert MarketSession(alibaba_capex_plan=PRESETS_RULE).controls.alibaba_capex_plan is None


def test_capex_plan_makes_any_other_strategy_spend_the_plan_evenly():
    session = MarketSession(alibaba_capex_plan="2x", **{"strategy: Alibaba": "cost_plus"})
    strategy = provider(session, "Alibaba").strategy
    per_quarter = 2 * 380e9 / 12 / BASELINE.rmb_per_usd  # RMB 380bn over three years, twice
    assert (strategy.capex_rule, strategy.capex) == ("fixed", pytest.approx(per_quarter))
    assert isinstance(strategy, CostPlus)
    session.step()
    assert provider(session, "Alibaba").capex == pytest.approx(per_quarter)


def test_multipliers_scale_the_presets_switching_cost_and_network_weight():
    config = MarketSession(switching_cost=2.0, network_weight=0.0).market.config
    assert config.enterprise.switching_cost == pytest.approx(2 * BASELINE.enterprise.switching_cost)
    assert config.choice.network_weight == 0.0


def test_strategy_choice_replaces_the_kind_and_keeps_the_parameters_it_accepts():
    # calvano_duopoly's firms play best_response with capex_rule = "none".
    session = MarketSession(preset="calvano_duopoly", **{"strategy: Firm 1": "fixed_price"})
    firm1, firm2 = (p.strategy for p in session.market.providers_list)
    assert isinstance(firm1, FixedPrice) and firm1.capex_rule == "none"
    assert type(firm2).__name__ == "BestResponse"
    untouched = MarketSession(preset="calvano_duopoly", **{"strategy: Firm 1": PRESETS_OWN})
    assert type(untouched.market.providers_list[0].strategy).__name__ == "BestResponse"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"preset": "calvano_duopoly", "alibaba_price_level": 1.5}, "has no provider named 'Alibaba'"),
        ({"preset": "calvano_duopoly", "strategy: Alibaba": "best_response"}, "has no provider named 'Alibaba'"),
        ({"seed": "abc"}, "seed: expected a whole number >= 0, got 'abc'"),
        ({"seed": "-3"}, "seed: expected a whole number >= 0"),
        ({"preset": "no_such_preset"}, "unknown scenario 'no_such_preset'"),
        ({"strategy: Tencent": "no_such_kind"}, "unknown strategy 'no_such_kind'"),
        ({"bogus": 1}, "unknown dashboard control 'bogus'"),
    ],
)
def test_bad_controls_become_a_message_not_an_exception(inputs, message):
    session = MarketSession(**inputs)
    assert session.market is None and not session.running
    assert message in session.error and "\n" not in session.error
    session.step()  # a no-op, not a crash
    assert session.quarter == 0
    assert "No model" in summary_html(session)
    assert session.chart_png("shares-1", CHARTS["shares-1"]).startswith(b"\x89PNG")


def test_a_failing_quarter_stops_the_session_with_a_message(monkeypatch):
    session = MarketSession()
    session.step()

    def broken_step():
        session.market.quarter += 1
        raise ValueError("the books do not balance")

    monkeypatch.setattr(session.market, "step", broken_step)
    session.step()
    assert not session.running
    assert session.error == "Quarter 2 failed: ValueError: the books do not balance"
    # the page still draws, from the last completed quarter
    assert session.quarter == 1
    assert "Quarter 1 of 40" in summary_html(session)
    assert all(session.chart_png(name, draw).startswith(b"\x89PNG") for name, draw in CHARTS.items())


@pytest.mark.parametrize("provider", ["Alibaba", "Tencent"])
def test_a_strategy_that_fails_in_a_real_quarter_leaves_a_drawable_page(provider):
    # q_learning needs one learner per market with few providers: in the baseline it fails in quarter 1
    session = MarketSession(**{"enterprises": 1000, f"strategy: {provider}": "q_learning"})
    assert session.error is None
    session.step()
    assert session.error is not None and session.error.startswith("Quarter 1 failed:") and "\n" not in session.error
    assert session.quarter == 0 and not session.running
    assert "Quarter 0 of 40" in summary_html(session)
    assert all(session.chart_png(name, draw).startswith(b"\x89PNG") for name, draw in CHARTS.items())


def test_the_session_stops_at_the_end_of_the_scenario():
    session = MarketSession(enterprises=500, preset="calvano_duopoly")
    quarters = session.market.config.quarters
    for _ in range(quarters + 5):  # SolaraViz's render interval steps without looking at running
        session.step()
    assert session.quarter == quarters and not session.running and session.error is None


def test_joint_profit_alone_in_a_market_prices_within_the_ceiling():
    session = MarketSession(**{"enterprises": 1000, "strategy: Tencent": "joint_profit"})
    for _ in range(3):
        session.step()
    assert session.error is None, session.error
    prices = session.market.prices
    assert np.all(np.isfinite(prices)) and prices.max() < 1e3


def test_controls_from_the_sidebar_are_parsed_once():
    controls = Controls.from_inputs(
        {"seed": " 12 ", "enterprises": 4000.0, "alibaba_capex_plan": "1.5x", "strategy: AWS": "fixed_price"}
    )
    assert (controls.seed, controls.enterprises, controls.alibaba_capex_plan) == (12, 4000, 1.5)
    assert controls.strategies == (("AWS", "fixed_price"),)


def test_strategy_choices_follow_the_registry():
    params = model_params()
    assert params["strategy: Alibaba"]["values"] == [PRESETS_OWN, *sorted(REGISTRY)]
    # every shipped preset's providers, the default preset's first; the others say where they belong
    theory = load_scenario("calvano_duopoly").provider_names
    assert [k.removeprefix(STRATEGY_KEY) for k in params if k.startswith(STRATEGY_KEY)] == [
        *BASELINE.provider_names,
        *theory,
    ]
    assert params[f"{STRATEGY_KEY}{theory[0]}"]["label"] == f"{theory[0]} (calvano_duopoly only)"
    assert params["strategy: Alibaba"]["label"] == "Alibaba"

    @dataclasses.dataclass
    class Dashboarded(Strategy):  # registering a playbook is all it takes to offer it
        kind = "test_dashboarded"

    try:
        assert "test_dashboarded" in model_params()["strategy: Tencent"]["values"]
    finally:
        del REGISTRY["test_dashboarded"]


# --------------------------------------------------------------------------------------------
# Charts, network view, summary
# --------------------------------------------------------------------------------------------
def test_charts_are_drawn_once_per_quarter_and_change_as_it_steps():
    session = MarketSession(enterprises=1000)
    before = {name: session.chart_png(name, draw) for name, draw in CHARTS.items()}
    assert all(png.startswith(b"\x89PNG") for png in before.values())
    assert session.chart_png("margins", CHARTS["margins"]) is before["margins"]  # cached
    session.step()
    session.step()
    after = {name: session.chart_png(name, draw) for name, draw in CHARTS.items()}
    assert all(after[name] != before[name] for name in CHARTS)


def test_network_view_is_a_sample_laid_out_once_without_touching_the_run():
    drawn = MarketSession(enterprises=2000)
    view = drawn.network_view
    assert len(view.nodes) == NETWORK_SAMPLE and len(np.unique(view.nodes)) == len(view.nodes)
    assert view.positions.shape == (NETWORK_SAMPLE, 2) and np.all(np.isfinite(view.positions))
    assert view.links_in_sample > NETWORK_SAMPLE  # neighbourhoods, not scattered dots
    undrawn = MarketSession(enterprises=2000)
    for _ in range(2):
        drawn.step()
        undrawn.step()
    assert drawn.network_view is view
    pd.testing.assert_frame_equal(drawn.results(), undrawn.results())


def test_snowball_sample_fills_up_when_the_network_has_no_links():
    network = load_network_free_model().network
    nodes = snowball_sample(network, 500, 120, np.random.default_rng(1))
    assert len(nodes) == 120 and len(np.unique(nodes)) == 120


def load_network_free_model() -> CloudMarket:
    return CloudMarket("calvano_duopoly", rng=0, overrides={"enterprises": 500})


def test_summary_names_the_quarter_and_the_leaders():
    session = MarketSession(enterprises=1000)
    assert '<h3 class="cloudwar-quarter">Quarter 0 of 40</h3>' in summary_html(session)
    session.step()
    html = summary_html(session)
    assert f"Quarter 1 of 40 ({BASELINE.start})" in html
    table = summary_table(session)
    assert list(table.columns) == ["China AI share", "global cloud share", "operating margin", "cum. FCF (USD bn)"]
    assert table["global cloud share"].sum() == pytest.approx(1.0)
    leader = table["China AI share"].idxmax()
    assert f"China AI: {leader} ({table['China AI share'].max():.1%})" in html


def test_calendar_quarters():
    assert [calendar_quarter("2025Q4", q) for q in (1, 2, 5, 6)] == ["2025Q4", "2026Q1", "2026Q4", "2027Q1"]


# --------------------------------------------------------------------------------------------
# The page, rendered with Solara's test renderer
# --------------------------------------------------------------------------------------------
def render_page():
    # AppLayout hosts the sidebar, as `solara run` does for a Page.
    _, rc = solara.render(solara.AppLayout(children=[app.Page()]), handle_error=False)
    return rc


def summary(rc) -> str:
    return rc.find(HTML, attributes={"class": "cloudwar-summary-body"}).widget.unsafe_innerHTML


def chart_png(rc, name: str) -> bytes:
    (image,) = [w for w in rc.find(ipywidgets.Image).widgets if f"cloudwar-chart-{name}" in w._dom_classes]
    return bytes(image.value)


def button(rc, label: str):
    return rc.find(v.Btn, children=[label]).widget


def errors(rc) -> list[str]:
    return [" ".join(map(str, w.children)) for w in rc.find(v.Alert).widgets]


def test_page_steps_and_resets_with_new_controls():
    rc = render_page()
    assert "Quarter 0 of 40" in summary(rc)
    assert {f"cloudwar-chart-{name}" for name in CHARTS} <= {
        c for w in rc.find(ipywidgets.Image).widgets for c in w._dom_classes
    }
    shares = chart_png(rc, "shares-1")
    button(rc, "Step").click()
    button(rc, "Step").click()
    assert "Quarter 2 of 40" in summary(rc)
    assert chart_png(rc, "shares-1") != shares

    rc.find(v.Select, label="Scenario preset").widget.v_model = "calvano_duopoly"
    seed = rc.find(v.TextField, label="Random seed").widget
    seed.v_model = "7"
    seed.fire_event("keyup.enter")  # a text box commits on Enter or leaving it
    button(rc, "Reset").click()
    assert "Quarter 0 of 30" in summary(rc) and "seed 7" in summary(rc)
    button(rc, "Step").click()
    assert "Quarter 1 of 30" in summary(rc)
    assert errors(rc) == []


def test_page_shows_a_bad_combination_and_recovers():
    rc = render_page()
    rc.find(v.Select, label="Scenario preset").widget.v_model = "calvano_duopoly"
    rc.find(v.Select, label="Alibaba").widget.v_model = "best_response"
    button(rc, "Reset").click()
    (message,) = errors(rc)
    assert "no provider named 'Alibaba'" in message
    assert "No model" in summary(rc)
    button(rc, "Step").click()  # nothing to step: stays alive, Step is then disabled
    assert button(rc, "Step").disabled

    rc.find(v.Select, label="Alibaba").widget.v_model = PRESETS_OWN
    button(rc, "Reset").click()
    assert errors(rc) == []
    assert "Quarter 0 of 30" in summary(rc)


def test_each_page_has_its_own_model():
    first, second = render_page(), render_page()
    button(first, "Step").click()
    assert "Quarter 1 of 40" in summary(first)
    assert "Quarter 0 of 40" in summary(second)


# --------------------------------------------------------------------------------------------
# cloudwar serve
# --------------------------------------------------------------------------------------------
class Executed(Exception):
    """Raised instead of replacing the test process with the server."""


@pytest.fixture
def no_exec(monkeypatch):
    calls = []

    def fake_execve(path, argv, env):
        calls.append((path, argv, env))
        raise Executed

    monkeypatch.setattr(serve.os, "execve", fake_execve)
    return calls


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_solara_on_localhost_in_production_mode(no_exec):
    port = free_port()
    with pytest.raises(Executed):
        main(["serve", "--port", str(port)])
    ((path, argv, env),) = no_exec
    assert path == sys.executable
    assert argv[1:5] == ["-m", "solara", "run", "cloudwar.dashboard.app"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == str(port)
    assert {"--production", "--no-open", "--no-check-version"} <= set(argv)
    assert env["SOLARA_TELEMETRY_MIXPANEL_ENABLE"] == "False"


def test_serve_refuses_a_port_in_use(no_exec, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert (
        capsys.readouterr().err == f"cloudwar: error: port {port} on 127.0.0.1 is in use (choose another with --port)\n"
    )
    assert no_exec == []


@pytest.mark.parametrize(("args", "message"), [(["--port", "70000"], "between 1 and 65535"), (["--port", "x"], "port")])
def test_serve_rejects_bad_ports_in_one_line(no_exec, capsys, args, message):
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cloudwar: error: ") and message in err and err.count("\n") == 1


def test_missing_assets_are_named(tmp_path):
    assert serve.missing_assets(tmp_path) == list(serve.CDN_PACKAGES)
    (tmp_path / "requirejs@2.3.6").mkdir()
    assert "requirejs@2.3.6" in serve.missing_assets(tmp_path)  # unpacking not finished: no package.json yet
    (tmp_path / "requirejs@2.3.6" / "package.json").write_text("{}")
    assert "requirejs@2.3.6" not in serve.missing_assets(tmp_path)


def test_cdn_packages_are_what_this_solara_asks_for():
    """The page's CDN references (Solara's page template, its grid layout, Font Awesome):
    if a Solara upgrade changes them, CDN_PACKAGES (and so scripts/dashboard-assets.sh) must follow."""
    import solara.server.settings
    import solara.widgets

    package = r"((?:@[\w.-]+/)?[\w.-]+@\d[\w.-]*)/"
    template = (Path(solara.server.settings.__file__).parent / "templates" / "solara.html.j2").read_text()
    # solara-vuetify3-app is the Vue 3 front-end, used only with ipyvue 3, which the dashboard extra excludes.
    asked = {name for name in re.findall(r"{{cdn}}/" + package, template) if "vuetify3" not in name}
    grid = (Path(solara.widgets.__file__).parent / "vue" / "gridlayout.vue").read_text()
    asked |= set(re.findall(r"getCdn\(\)}/" + package, grid))
    asked |= set(re.findall("^/" + package, solara.server.settings.assets.fontawesome_path))
    assert asked == set(serve.CDN_PACKAGES)


def test_serve_module_is_cheap_to_import():
    code = "import sys, cloudwar.dashboard.serve; print(sorted(m for m in ('solara', 'mesa.visualization') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_only_the_page_module_imports_solara():
    modules = ", ".join(f"cloudwar.dashboard.{m}" for m in ("controls", "session", "charts", "summary"))
    code = (
        f"import sys, {modules}; "
        "print(sorted(m for m in ('solara', 'mesa.visualization', 'ipywidgets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "import sys, cloudwar.dashboard.app; print('solara' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "True\n"
