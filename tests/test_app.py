"""The dashboard (cloudwar.dashboard.*) without a browser: controls, the session model, charts, and the page
rendered with Solara's own test renderer; and the ``cloudwar serve`` command (cloudwar.dashboard.serve)."""

from __future__ import annotations

import dataclasses
import io
import re
import shlex
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

from cloudwar import plots
from cloudwar.cli import main
from cloudwar.dashboard import app, serve
from cloudwar.dashboard import controls as ctl
from cloudwar.dashboard.charts import CHARTS, charts_png
from cloudwar.dashboard.controls import (
    DEFAULT_ENTERPRISES,
    PRESETS_OWN,
    PRESETS_RULE,
    STRATEGY_KEY,
    Controls,
    param_key,
)
from cloudwar.dashboard.session import NETWORK_SAMPLE, MarketSession, snowball_sample
from cloudwar.dashboard.summary import comparison_html, comparison_table, summary_html, summary_table
from cloudwar.model.market import CloudMarket
from cloudwar.scenario import ScenarioError, load_scenario, parse_override
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
    assert ctl.strategy_kinds() == [PRESETS_OWN, *sorted(REGISTRY)]

    @dataclasses.dataclass
    class Dashboarded(Strategy):  # registering a playbook is all it takes to offer it
        kind = "test_dashboarded"

    try:
        assert "test_dashboarded" in ctl.strategy_kinds()
    finally:
        del REGISTRY["test_dashboarded"]


def test_only_the_chosen_presets_controls_are_offered():
    baseline = {c.key for c in ctl.scenario_controls("baseline")}
    theory = {c.key for c in ctl.scenario_controls("calvano_duopoly")}
    assert {"alibaba_price_level", "alibaba_capex_plan"} <= baseline
    assert theory == baseline - {"alibaba_price_level", "alibaba_capex_plan"}  # no Alibaba there
    inputs = ctl.default_inputs("baseline")
    assert [k.removeprefix(STRATEGY_KEY) for k in inputs if k.startswith(STRATEGY_KEY)] == BASELINE.provider_names
    assert Controls.from_inputs(inputs) == Controls()  # the defaults are the preset as shipped
    # Moving to another preset keeps what applies to both and drops the other providers' settings.
    edited = {**inputs, "seed": "7", "alibaba_price_level": 1.5, param_key("AWS", "capex"): "1e9"}
    moved = ctl.for_preset(edited, "calvano_duopoly")
    assert moved["seed"] == "7" and moved["preset"] == "calvano_duopoly"
    assert not [k for k in moved if "AWS" in k or "Alibaba" in k or k.startswith("alibaba")]
    assert f"{STRATEGY_KEY}Firm 1" in moved
    assert MarketSession(**moved).error is None


# --------------------------------------------------------------------------------------------
# Strategy parameters, pending changes, export
# --------------------------------------------------------------------------------------------
def test_strategy_parameters_are_shown_with_their_values_units_and_bounds():
    shown = {p.name: p for p in ctl.strategy_controls("baseline", "Alibaba")}
    assert set(shown) >= {"price_cut", "capex_plan", "harvest_quarter"}
    assert "max_capacity_addition" not in shown  # GPU supply is the provider's now (its own control)
    assert shown["price_cut"].text == "0.1" and "[0, 1]" in shown["price_cut"].hint
    assert shown["capex_plan"].text == "3.8e+11" and shown["capex_plan"].unit == "RMB"
    assert shown["harvest_quarter"].quarter and shown["harvest_quarter"].text == "0"  # 0 = never
    assert "calendar quarter" in shown["harvest_quarter"].hint
    assert shown["capex_rule"].choices == ("utilisation", "fixed", "none")
    # Another kind shows its own parameters, with the preset's values it accepts.
    cut = {p.name: p for p in ctl.strategy_controls("baseline", "Alibaba", "price_cut")}
    assert cut["at_quarter"].text == "2026Q1"  # step 2 of a run from 2025Q4, shown as its calendar quarter
    assert "harvest_quarter" not in cut


@pytest.mark.parametrize(
    ("kind", "name", "text", "value"),
    [
        ("share_first", "harvest_quarter", "2027Q1", 6),  # a calendar quarter becomes the step (2025Q4 = 1)
        ("share_first", "harvest_quarter", "6", 6),
        ("share_first", "price_cut", " 0.25 ", 0.25),
        ("share_first", "price_ratio", "{ai = 0.9}", {"ai": 0.9}),  # a table per market, as --set reads it
        ("share_first", "price_ratio", "", None),  # unset
        ("share_first", "capex_rule", "fixed", "fixed"),
    ],
)
def test_typed_parameters_are_read_as_set_values_and_quarters(kind, name, text, value):
    assert ctl.parse_param(kind, name, text, "2025Q4") == value


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("price_cut", "1.5", "parameter 'price_cut' must be between 0 and 1 (fraction), got 1.5"),
        ("harvest_quarter", "2025Q1", "harvest_quarter: 2025Q1 is before the scenario's start (2025Q4)"),
        ("harvest_quarter", "2.5", "parameter 'harvest_quarter' must be a whole number"),
        ("capex_rule", "sometimes", "parameter 'capex_rule' must be one of utilisation, fixed, none"),
        ("price_cut", "lots", "parameter 'price_cut' must be a finite number, got 'lots'"),
        ("no_such", "1", "strategy 'share_first' has no declared parameter 'no_such'"),
    ],
)
def test_bad_parameters_are_refused_in_one_line(name, text, message):
    with pytest.raises(ScenarioError, match=re.escape(message)):
        ctl.parse_param("share_first", name, text, "2025Q4")
    session = MarketSession(**{param_key("Alibaba", name): text})
    assert session.market is None and message in session.error and "\n" not in session.error


def test_typed_parameters_reach_the_strategy_and_unchanged_ones_are_no_change():
    session = MarketSession(
        **{param_key("Alibaba", "harvest_quarter"): "2027Q1", param_key("Alibaba", "price_cut"): "0.10"}
    )
    strategy = provider(session, "Alibaba").strategy
    assert (strategy.harvest_quarter, strategy.price_cut) == (6, 0.10)
    assert session.controls.params == (("Alibaba", "harvest_quarter", 6),)  # 0.10 is the default: no change
    assert session.controls.settings()["Alibaba harvest_quarter"] == "2027Q1 (step 6)"
    # A new kind keeps the preset's parameters it accepts, then the typed ones.
    switched = MarketSession(**{"strategy: AWS": "price_cut", param_key("AWS", "at_quarter"): "2026Q4"})
    assert provider(switched, "AWS").strategy.at_quarter == 5


def test_gpu_supply_is_a_provider_control_checked_by_the_schema():
    shown = ctl.gpu_controls("baseline", "Tencent")
    assert [(g.region, g.text) for g in shown] == [("*", "0.05")]  # the preset's 5% a quarter, all regions
    assert shown[0].show("0.05") == f"0.05 = 5% {ctl.GPU_UNIT}" and shown[0].show("") == "unlimited"
    assert [g.text for g in ctl.gpu_controls("baseline", "AWS")] == [""]  # unlimited in the preset
    # Export controls halve Tencent's GPU supply: the provider field, not a strategy parameter.
    limited = MarketSession(**{ctl.gpu_key("Tencent"): "2.5%"})
    assert limited.error is None and provider(limited, "Tencent").gpu_supply == {"*": 0.025}
    assert limited.controls.overrides(BASELINE)["providers.Tencent.gpu_supply.*"] == 0.025
    assert limited.controls.settings()["Tencent GPU supply"] == "2.5% a quarter"
    # One region only: the other regions keep the preset's limit.
    china = MarketSession(**{ctl.gpu_key("Tencent", "china"): "0.01"})
    assert provider(china, "Tencent").gpu_supply == {"*": 0.05, "china": 0.01}
    assert MarketSession(**{ctl.gpu_key("Tencent"): "0.05"}).controls.gpu_supply == ()  # the preset's: no change
    # Bad values: one line, from the schema's own bounds and region names.
    for key, text, message in [
        (ctl.gpu_key("Tencent"), "-0.1", "Tencent GPU supply: providers.Tencent.gpu_supply"),
        (ctl.gpu_key("Tencent"), "lots", "Tencent GPU supply: expected a fraction of capacity a quarter"),
        (ctl.gpu_key("Tencent", "mars"), "0.1", "'mars' is not a region of this scenario"),
        (ctl.gpu_key("Tencent"), "", "the preset limits it to 0.05"),
    ]:
        session = MarketSession(**{key: text})
        assert session.market is None and message in session.error and "\n" not in session.error, session.error


def test_values_written_as_toml_read_back_the_same():
    for value in (0.1 + 0.2, 1 / 3, 380e9 * 1.5, 1e-300, 12, "share_first", {"ai": {"china": 0.3}, "cloud": 2.0}):
        assert parse_override(f"x={ctl.toml_value(value)}")[1] == value


def test_pending_changes_are_listed_until_reset():
    session = MarketSession()
    inputs = ctl.default_inputs()
    assert app.pending_message(session, inputs) is None
    message = app.pending_message(session, {**inputs, "seed": "7", param_key("Alibaba", "harvest_quarter"): "2027Q1"})
    assert "press Reset" in message and "seed: 0 → 7" in message
    assert "Alibaba harvest_quarter: as in the preset → 2027Q1 (step 6)" in message
    assert app.pending_message(session, {**inputs, "seed": "x"}).startswith("Pending changes are not valid yet: seed")
    assert app.pending_message(MarketSession(seed="7"), {**inputs, "seed": "7"}) is None


def test_exported_command_reproduces_the_exported_table(tmp_path):
    inputs = {
        "enterprises": 800,
        "seed": "3",
        "alibaba_price_level": 0.85,
        "alibaba_capex_plan": "1.5x",
        "switching_cost": 1.3,
        f"{STRATEGY_KEY}AWS": "price_cut",
        param_key("AWS", "cut"): "0.2",
        param_key("Alibaba", "harvest_quarter"): "2026Q3",
        ctl.gpu_key("Tencent"): "0.025",
    }
    session = MarketSession(**inputs)
    for _ in range(4):
        session.step()
    assert session.error is None
    command = session.command()
    assert "--quarters 4" in command and "harvest_quarter = 4" in command
    assert "--set 'providers.Tencent.gpu_supply.*=0.025'" in command
    argv = __import__("shlex").split(command)
    argv[argv.index("--out") + 1] = str(tmp_path / "run")
    subprocess.run([sys.executable, "-m", "cloudwar.cli", *argv[1:]], check=True, capture_output=True)
    assert (tmp_path / "run" / "results.csv").read_bytes() == session.results_csv()
    assert MarketSession().command() is None  # nothing to export before the first quarter


def test_a_pinned_run_is_compared_quarter_by_quarter():
    before = MarketSession(enterprises=800)
    for _ in range(4):
        before.step()
    pinned = before.pin()
    assert MarketSession().pin() is None
    after = MarketSession(enterprises=800, **{param_key("Alibaba", "price_cut"): "0.3"})
    for _ in range(3):
        after.step()
    quarter, table = comparison_table(after, pinned)
    assert quarter == 3  # the last quarter both have run
    now, then = summary_table(after), summary_table(after, pinned.results_until(3))
    np.testing.assert_allclose(table["Δ NPV (USD bn)"], now["NPV (USD bn)"] - then["NPV (USD bn)"])
    np.testing.assert_allclose(table["Δ China AI share"], now["China AI share"] - then["China AI share"])
    assert table["Δ China AI share"].abs().max() > 0  # a deeper cut moves shares

    # Enterprise value (NPV so far + terminal value), from each run's tidy table at quarter 3.
    def value(results):
        rows = results[(results.metric == "enterprise_value") & (results.quarter == 3) & (results.region == "all")]
        return rows[rows["product"] == "all"].set_index("provider")["value"].reindex(table.index) / 1e9

    np.testing.assert_allclose(table["EV pinned (USD bn)"], value(pinned.results))
    np.testing.assert_allclose(table["Δ EV (USD bn)"], value(after.results()) - value(pinned.results))
    assert table["Δ EV (USD bn)"].abs().max() > 0
    html = comparison_html(after, pinned)
    assert "<th>Δ EV (USD bn)</th>" in html
    assert "Alibaba price_cut: as in the preset → 0.3" in html and "at quarter 3 (2026Q2)" in html
    # The same model again: every paired difference is zero.
    again = MarketSession(enterprises=800)
    for _ in range(4):
        again.step()
    assert (comparison_table(again, pinned)[1].filter(like="Δ") == 0).all().all()
    assert "the same settings" in comparison_html(again, pinned)


def test_charts_export_as_one_png_of_every_tile():
    from PIL import Image

    session = MarketSession(enterprises=800)
    session.step()
    sheet = Image.open(io.BytesIO(charts_png(session)))
    tile = Image.open(io.BytesIO(session.chart_png("margins", CHARTS["margins"])))
    assert sheet.size == (2 * tile.width, 4 * tile.height)


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
    assert list(table.columns) == [
        "China AI share",
        "rest of world cloud share",
        "operating margin",
        "cum. FCF (USD bn)",
        "NPV (USD bn)",
    ]
    assert table["rest of world cloud share"].sum() == pytest.approx(1.0)
    leader = table["China AI share"].idxmax()
    assert f"China AI: {leader} ({table['China AI share'].max():.1%})" in html


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


def shown_value(rc, key: str) -> str:
    """The value printed beside the slider of control ``key``."""
    return " ".join(map(str, rc.find(v.Html, class_=f"cloudwar-value cloudwar-value-{key}").widget.children))


def stale(rc) -> list[str]:
    return [" ".join(map(str, w.children)) for w in rc.find(v.Alert).widgets if "cloudwar-stale" in w.class_]


def type_into(rc, label: str, text: str) -> None:
    field = rc.find(v.TextField, label=label).widget
    field.v_model = text
    field.fire_event("keyup.enter")


def test_page_shows_a_bad_parameter_and_recovers():
    rc = render_page()
    type_into(rc, "harvest_quarter", "2020Q1")  # Alibaba's (the only provider with this parameter)
    assert any("before the scenario's start" in m for m in stale(rc))  # pending, and not valid
    field = rc.find(v.TextField, label="harvest_quarter").widget
    assert field.error and "before the scenario's start" in " ".join(field.messages)
    button(rc, "Reset").click()
    (message,) = [m for m in errors(rc) if m not in stale(rc)]
    assert "These controls do not make a valid model: Alibaba strategy: harvest_quarter: 2020Q1" in message
    assert "No model" in summary(rc)
    button(rc, "Step").click()  # nothing to step: stays alive, Step is then disabled
    assert button(rc, "Step").disabled

    type_into(rc, "harvest_quarter", "2027Q1")
    assert "step 6 = 2027Q1" in " ".join(rc.find(v.TextField, label="harvest_quarter").widget.messages)
    button(rc, "Reset").click()
    assert errors(rc) == []
    assert "Changed from the preset: Alibaba harvest_quarter 2027Q1 (step 6)" in summary(rc)


def test_page_marks_pending_changes_pins_compares_and_exports():
    rc = render_page()
    assert stale(rc) == [] and rc.find(v.Btn, children=["Pin this run"]).widget.disabled
    button(rc, "Step").click()
    button(rc, "Step").click()
    button(rc, "Pin this run").click()
    assert "Compared with the pinned run" in summary(rc)
    rc.find(v.Slider, label="Alibaba price level").widget.v_model = 0.6
    assert any("Alibaba price level: as in the preset → x0.60" in m for m in stale(rc))
    assert shown_value(rc, "alibaba_price_level") == "x0.60 starting prices"  # the value, without dragging
    assert shown_value(rc, "enterprises") == "3,000"
    button(rc, "Reset").click()
    assert stale(rc) == []
    button(rc, "Step").click()
    html = summary(rc)
    assert "Pinned → this run: Alibaba price level: as in the preset → x0.60" in html
    assert 'class="cloudwar-table cloudwar-compare"' in html and "at quarter 1 (2025Q4)" in html
    # Export: the command of the model on screen, and downloads of the table and the charts.
    card = [w.unsafe_innerHTML for w in rc.find(HTML).widgets if "cloudwar-command" in w.unsafe_innerHTML]
    assert card and "--quarters 1" in card[0] and "providers.Alibaba.price=" in card[0]
    button(rc, "Unpin").click()
    assert "Compared with the pinned run" not in summary(rc)


def test_events_are_listed_checked_pending_exported_and_drawn(tmp_path):
    shipped = ctl.preset_events("history")
    assert shipped and shipped[0].at == "2023Q4" and "providers.Baidu.gpu_supply.china = 0.1" in shipped[0].keys
    # The preset's timeline as shipped is no change; one more event is, validated by the scenario.
    assert Controls.from_inputs({"preset": "history", ctl.EVENTS_KEY: tuple(shipped)}).events is None
    added = ctl.EventEntry("2024Q4", "export controls tighten", "providers.Tencent.gpu_supply = 0.01\n")
    inputs = {"preset": "history", "enterprises": 600, ctl.EVENTS_KEY: (*shipped[1:], added)}
    session = MarketSession(**inputs)
    assert session.error is None
    assert ("2024Q4", "export controls tighten") in [(e.label, e.name) for e in session.market.events]
    assert shipped[0].name not in [e.name for e in session.market.events]  # removed
    assert "2024Q4 export controls tighten" in session.controls.settings()["events"]
    for bad, message in [
        ("providers.Nobody.gpu_supply = 0.01", 'events[5] ("x", 2024Q4): providers.Nobody.gpu_supply: no provider'),
        ("providers.Tencent.gpux = 1", "not a key an event can set"),
        ("garbage", "event \"x\" (2024Q4): --set 'garbage': expected key=value"),
    ]:
        failed = MarketSession(preset="history", events=(*shipped, ctl.EventEntry("2024Q4", "x", bad)))
        assert failed.market is None and message in failed.error and "\n" not in failed.error, failed.error
    # Drawn on the charts: a dotted line per event in the quarters run.
    for _ in range(6):
        session.step()
    figure = CHARTS["shares-1"](session, None)
    marks = [line for line in figure.axes[0].lines if line.get_gid() == plots.EVENT_GID]
    assert sorted(line.get_xdata()[0] for line in marks) == [e.step for e in session.market.events if e.step <= 6]
    # The exported command (events as --set events=[...]) reproduces the table.
    argv = shlex.split(session.command())
    assert any(a.startswith("events=[") and "export controls tighten" in a for a in argv)
    argv[argv.index("--out") + 1] = str(tmp_path / "run")
    subprocess.run([sys.executable, "-m", "cloudwar.cli", *argv[1:]], check=True, capture_output=True)
    assert (tmp_path / "run" / "results.csv").read_bytes() == session.results_csv()


def test_history_preset_draws_the_actual_points_on_the_models_lines():
    from cloudwar.dashboard import history
    from cloudwar.runs.backtest import read_history

    assert "history" in ctl.scenario_controls("history")[0].values  # a preset of the page
    session = MarketSession(preset="history", enterprises=600)
    for _ in range(4):
        session.step()
    actual = read_history().set_index(["series", "quarter"])["value"]
    # Margins: AWS's and Google Cloud's operating margins, Alibaba's cloud margin, in the quarters run.
    margins = history.chart_points("margins", session)
    aws = margins[margins.provider == "AWS"]
    assert list(aws.period) == ["2023Q3", "2023Q4", "2024Q1", "2024Q2"] and list(aws.step) == [1, 2, 3, 4]
    assert list(aws.value) == [actual["aws_operating_margin_pct", q] for q in aws.period]
    assert {"Alibaba", "AWS", "Google"} == set(margins.provider)
    assert history.chart_points("shares-1", session).empty  # Omdia's 2025H1 shares: not reached yet
    assert history.chart_points("shares-2", session).empty  # no series of rest-of-world cloud shares
    figure = CHARTS["margins"](session, None)
    drawn = [c for c in figure.axes[0].collections if c.get_label() == "_AWS actual"]
    assert drawn and [tuple(xy) for xy in drawn[0].get_offsets()] == list(zip(aws.step, aws.value, strict=True))
    session.chart_png("margins", CHARTS["margins"])
    assert "actual (history.csv)" in session.chart_text("margins")  # the legend names them
    for _ in range(5):
        session.step()
    shares = history.chart_points("shares-1", session)  # China AI shares, 2025H1: between 2025Q1 and Q2
    assert set(shares.step) == {7.5} and "Volcano Engine" in set(shares.provider)
    assert shares.set_index("provider").value["Alibaba"] == actual["omdia_china_ai_cloud_share_alibaba_pct", "2025H1"]
    # Another preset has no history: nothing drawn.
    other = MarketSession(enterprises=600)
    other.step()
    assert history.chart_points("margins", other).empty
    other.chart_png("margins", CHARTS["margins"])
    assert "actual (history.csv)" not in other.chart_text("margins")


def test_page_events_editor_adds_refuses_and_removes():
    rc = render_page()
    assert "No events in baseline" in " ".join(str(w.children) for w in rc.find(v.Html).widgets)
    keys = rc.find(v.Textarea, label="Event keys").widget
    rc.find(v.TextField, label="Event quarter").widget.v_model = "2026Q2"
    rc.find(v.TextField, label="Event name").widget.v_model = "x"
    keys.v_model = "providers.Nobody.gpu_supply = 0.01"
    button(rc, "Add event").click()
    assert any("no provider named 'Nobody'" in m for m in errors(rc))  # refused, in one line
    assert stale(rc) == []
    rc.find(v.TextField, label="Event name").widget.v_model = "export controls tighten"
    keys.v_model = "providers.Tencent.gpu_supply = 0.01"
    button(rc, "Add event").click()
    assert not any("Nobody" in m for m in errors(rc))
    assert any("events: as in the preset → 2026Q2 export controls tighten" in m for m in stale(rc))
    button(rc, "Reset").click()
    assert stale(rc) == []
    assert "export controls tighten" in " ".join(str(w.unsafe_innerHTML) for w in rc.find(HTML).widgets)
    button(rc, "Remove").click()
    assert any("events: 2026Q2 export controls tighten → as in the preset" in m for m in stale(rc))


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
    modules = ", ".join(f"cloudwar.dashboard.{m}" for m in ("controls", "session", "charts", "summary", "history"))
    code = (
        f"import sys, {modules}; "
        "print(sorted(m for m in ('solara', 'mesa.visualization', 'ipywidgets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "import sys, cloudwar.dashboard.app; print('solara' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "True\n"
