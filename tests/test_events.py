"""Calendar time and scenario events: quarter-valued parameters, [[events]], GPU supply, cost shocks."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from cloudwar import CloudMarket, ScenarioError, plots
from cloudwar.results import plot_results
from cloudwar.scenario import describe_events, load_scenario, parse_scenario, read_scenario_toml
from cloudwar.strategies import describe_strategies

SMALL = {"enterprises": 1500, "quarters": 8}
COST_FOLLOWING = {"kind": "price_cut", "cut": 0.0}  # Alibaba's prices follow unit cost, no cut


def scenario(events: list[dict], **overrides) -> object:
    """The baseline with ``events`` (and dotted-key overrides), validated."""
    raw = read_scenario_toml("baseline")
    raw.update(SMALL)
    from cloudwar.scenario import apply_overrides

    raw = apply_overrides(raw, overrides)
    raw["events"] = events
    return parse_scenario(raw)


def run(s, seed: int = 4) -> pd.DataFrame:
    return CloudMarket(s, rng=seed).run()


def baseline_file(tmp_path, events_toml: str):
    """A scenario file: the shipped baseline with ``events_toml`` appended."""
    text = (resources.files("cloudwar.scenario.data") / "baseline.toml").read_text(encoding="utf-8")
    path = tmp_path / "with_events.toml"
    path.write_text(text + "\n" + events_toml, encoding="utf-8")
    return path


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cloudwar.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


# ------------------------------------------------------------------------------------------------
# Quarter-valued parameters
# ------------------------------------------------------------------------------------------------
def test_a_calendar_quarter_parameter_equals_its_step():
    over = {**SMALL, "quarters": 8}
    by_label = CloudMarket(
        "baseline", rng=2, overrides={**over, "providers.Alibaba.strategy.harvest_quarter": "2027Q1"}
    )
    by_step = CloudMarket("baseline", rng=2, overrides={**over, "providers.Alibaba.strategy.harvest_quarter": 6})
    assert by_label.providers_list[0].strategy.harvest_quarter == 6  # resolved from the start, 2025Q4
    a, b = by_label.run(), by_step.run()
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    never = CloudMarket("baseline", rng=2, overrides=over).run()
    assert not a["value"].equals(never["value"])  # the harvest did happen within the run


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2025Q3", "parameter 'harvest_quarter': 2025Q3 is before the scenario's start (2025Q4)"),
        ("2027Q5", "parameter 'harvest_quarter' must be a step (whole number) or a calendar quarter like 2027Q1"),
        (2.5, "parameter 'harvest_quarter' must be a whole number"),
    ],
)
def test_a_bad_quarter_parameter_is_one_line_naming_it(value, message):
    with pytest.raises(ScenarioError) as err:
        load_scenario("baseline", {"providers.Alibaba.strategy.harvest_quarter": value})
    assert str(err.value).startswith("providers.Alibaba.strategy: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_the_command_line_accepts_a_calendar_quarter_for_a_quarter_parameter():
    done = cli(
        "run",
        "--quarters",
        "2",
        "--set",
        "enterprises=800",
        "--set",
        "providers.Alibaba.strategy.harvest_quarter=2027Q1",
    )
    assert done.returncode == 0, done.stderr
    rows = {r.kind: r for r in describe_strategies()}
    harvest = next(p for p in rows["share_first"].params if p.name == "harvest_quarter")
    assert harvest.accepts.endswith("or YYYYQn")


# ------------------------------------------------------------------------------------------------
# Events
# ------------------------------------------------------------------------------------------------
def test_a_price_cut_event_equals_the_price_cut_strategy():
    cut_from_start = run(
        load_scenario(
            "baseline",
            {**SMALL, "providers.Alibaba.strategy": {"kind": "price_cut", "cut": 0.5, "at_quarter": "2026Q2"}},
        )
    )
    parameter_event = {"at": "2026Q2", "name": "cut", "set": {"providers.Alibaba.strategy.cut": 0.5}}
    by_parameter = run(scenario([parameter_event], **{"providers.Alibaba.strategy": COST_FOLLOWING}))
    strategy_event = {
        "at": 3,
        "name": "cut",
        "set": {"providers.Alibaba.strategy": {"kind": "price_cut", "cut": 0.5, "at_quarter": 1}},
    }
    by_strategy = run(scenario([strategy_event], **{"providers.Alibaba.strategy": COST_FOLLOWING}))
    pd.testing.assert_frame_equal(by_parameter, cut_from_start, check_exact=True)
    pd.testing.assert_frame_equal(by_strategy, cut_from_start, check_exact=True)
    uncut = run(scenario([], **{"providers.Alibaba.strategy": COST_FOLLOWING}))
    price = uncut[(uncut.metric == "price") & (uncut.provider == "Alibaba")].value.to_numpy()
    cut_price = by_parameter[(by_parameter.metric == "price") & (by_parameter.provider == "Alibaba")]
    assert not np.array_equal(price, cut_price.value.to_numpy())


def test_a_replaced_strategy_is_started_when_installed():
    event = {
        "at": "2026Q2",
        "name": "AWS playbook",
        "set": {"providers.Alibaba.strategy": {"kind": "margin_discipline"}},
    }
    model = CloudMarket(scenario([event]), rng=1)
    model.run(2)
    assert type(model.providers_list[0].strategy).__name__ == "ShareFirst"
    model.step()  # quarter 3: the event installs margin_discipline, which needs its controller_ from start()
    alibaba = model.providers_list[0]
    assert type(alibaba.strategy).__name__ == "MarginDiscipline" and hasattr(alibaba.strategy, "controller_")
    assert alibaba.spec.strategy.kind == "margin_discipline"


def test_a_gpu_supply_event_changes_capacity_growth_from_its_quarter_on_and_not_before():
    half = {"at": 4, "name": "export rules", "set": {"providers.Tencent.gpu_supply.china": 0.025}}
    with_event = CloudMarket(scenario([half], quarters=12), rng=6)
    without = CloudMarket(scenario([], quarters=12), rng=6)
    assert with_event.providers_list[1].gpu_supply == {"*": 0.05}  # the baseline's, all regions together
    lag = with_event.capacity.build_lag
    china = with_event.region_names.index("china")
    for q in range(1, 13):
        with_event.step()
        without.step()
        a, b = with_event.providers_list[1], without.providers_list[1]
        if q < 4:
            np.testing.assert_array_equal(a.history[-1].capex, b.history[-1].capex)
            assert a.gpu_supply == {"*": 0.05}
        else:
            assert a.gpu_supply == {"*": 0.05, "china": 0.025}
        if q >= 4 and a.history[-1].capex[china] > 0:  # an order brings China's capacity to at most +2.5% a quarter
            now, arrival = (a.capacity_in_service(q + d)[china] for d in (0, lag))
            assert arrival <= now * 1.025**lag * (1 + 1e-9)
    a, b = with_event.results(), without.results()
    before = a.quarter < 4
    pd.testing.assert_frame_equal(a[before], b[before], check_exact=True)
    capex = lambda t: t[(t.metric == "capex") & (t.provider == "Tencent") & (t.region == "china")]  # noqa: E731
    after_a, after_b = capex(a).set_index("quarter").value, capex(b).set_index("quarter").value
    assert after_a[4] < 0.5 * after_b[4]  # it binds in its quarter
    assert after_a[after_a.index >= 4].sum() < 0.9 * after_b[after_b.index >= 4].sum()  # and after


def test_a_cost_shock_multiplies_unit_cost_from_its_quarter_on():
    shock = {"at": "2026Q2", "name": "cost shock", "set": {"providers.Huawei.cost_shock.cloud.china": 1.2}}
    with_event = CloudMarket(scenario([shock]), rng=3)
    without = CloudMarket(scenario([]), rng=3)
    huawei = with_event.provider_names.index("Huawei")
    k, r = with_event.product_names.index("cloud"), with_event.region_names.index("china")
    for _ in range(3):
        with_event.step()
        without.step()
    a = with_event.providers_list[huawei]
    # after quarter 3 is booked, next quarter's cost: same learning and hardware, 1.2 times the base in China cloud
    ratio = a.unit_cost / (a.base_cost * a._learning * a._hardware)
    assert ratio[k, r] == pytest.approx(1.2) and np.delete(ratio.ravel(), k * ratio.shape[1] + r) == pytest.approx(1.0)
    table_a, table_b = with_event.results(), without.results()
    assert table_a[table_a.quarter < 3].equals(table_b[table_b.quarter < 3])


def test_a_price_event_sets_the_list_price_for_its_quarter_only():
    event = {"at": 3, "name": "list price", "set": {"providers.AWS.price.ai.china": 2.0}}
    table = run(scenario([event]))
    aws = table[(table.metric == "price") & (table.provider == "AWS") & (table["product"] == "ai")]
    china = aws[aws.region == "china"].set_index("quarter").value
    assert china[3] == 2.0 and china[2] != 2.0 and china[4] != 2.0
    assert (aws[(aws.region == "global") & (aws.quarter == 3)].value != 2.0).all()


def test_events_are_listed_in_the_order_they_happen():
    events = [
        {"at": "2026Q3", "name": "later", "source": "history.md: x", "set": {"providers.Tencent.gpu_supply": 0.02}},
        {"at": "2026Q1", "name": "sooner", "set": {"providers.Alibaba.strategy.price_ratio": 0.9}},
    ]
    rows = describe_events(scenario(events))
    assert [(r.at, r.step, r.name) for r in rows] == [("2026Q1", "2", "sooner"), ("2026Q3", "4", "later")]
    assert rows[0].changes == "providers.Alibaba.strategy.price_ratio = 0.9" and rows[1].source == "history.md: x"


@pytest.mark.parametrize(
    ("event_set", "message"),
    [
        ({"providers.Alibaba.colour": "red"}, "providers.Alibaba.colour: not a key an event can set (supported: "),
        ({"enterprises": 5}, "enterprises: not a key an event can set"),
        ({"providers.Alibaba.strategy.cut": 2}, "providers.Alibaba.strategy: unknown parameter 'cut'"),
        ({"providers.Nobody.gpu_supply": 0.1}, "no provider named 'Nobody'"),
        ({"providers.Tencent.gpu_supply.mars": 0.1}, "providers.Tencent.gpu_supply.mars: 'mars' is not a region"),
        ({"providers.Tencent.gpu_supply": -1}, "providers.Tencent.gpu_supply.*: must be >= 0"),
        ({"providers.Huawei.cost_shock.cloud.china": 0}, "providers.Huawei.cost_shock.cloud.china: must be > 0"),
        ({"providers.Alibaba.price": 1.0}, "providers.Alibaba.price: not a key an event can set"),
    ],
)
def test_a_bad_event_is_one_line_naming_the_event(event_set, message):
    events = [
        {"at": "2026Q1", "name": "fine", "set": {"providers.Alibaba.strategy.price_ratio": 0.9}},
        {"at": "2026Q2", "name": "May 2024 price war", "set": event_set},
    ]
    with pytest.raises(ScenarioError) as err:
        scenario(events)
    text = str(err.value)
    assert text.startswith('events[1] ("May 2024 price war", 2026Q2): ') and message in text, text
    assert "\n" not in text


def test_an_event_before_the_start_or_without_a_name_is_refused():
    with pytest.raises(ScenarioError, match=r'^events\[0\] \("old", 2025Q1\): at: 2025Q1 is before the scenario'):
        scenario([{"at": "2025Q1", "name": "old", "set": {"providers.Tencent.gpu_supply": 0.1}}])
    with pytest.raises(ScenarioError, match=r"^events\[0\] .*name: missing"):
        scenario([{"at": 2, "set": {"providers.Tencent.gpu_supply": 0.1}}])


def test_the_command_line_lists_events_marks_them_and_refuses_bad_ones(tmp_path):
    good = baseline_file(
        tmp_path,
        """
[[events]]
at = "2026Q2"
name = "May 2024 LLM price war"
source = "history.md: 2024-05-21 Alibaba cuts Qwen-Long by 97%"
set = { "providers.Alibaba.strategy" = { kind = "price_cut", cut = 0.97, product = "ai", region = "china" } }

[[events]]
at = "2026Q1"
name = "US export rules widened"
set = { "providers.Tencent.gpu_supply.china" = 0.03, "providers.Alibaba.strategy.price_ratio" = 0.9 }

[[events]]
at = "2027Q4"
name = "after the run"
set = { "providers.Huawei.cost_shock.cloud.china" = 1.2 }
""",
    )
    out = tmp_path / "out"
    done = cli("run", "--scenario", str(good), "--quarters", "4", "--set", "enterprises=1000", "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("event ")]
    assert lines == [
        "event 2026Q1 (quarter 2): US export rules widened: providers.Tencent.gpu_supply.china = 0.03; "
        "providers.Alibaba.strategy.price_ratio = 0.9",
        'event 2026Q2 (quarter 3): May 2024 LLM price war: providers.Alibaba.strategy = {kind = "price_cut", '
        'cut = 0.97, product = "ai", region = "china"}',
    ]
    assert pd.read_csv(out / "results.csv").calendar.unique().tolist() == ["2025Q4", "2026Q1", "2026Q2", "2026Q3"]

    bad = baseline_file(
        tmp_path, '[[events]]\nat = "2026Q2"\nname = "typo"\nset = { "providers.Alibaba.strategy.cut" = 0.5 }\n'
    )
    refused = cli("run", "--scenario", str(bad), "--quarters", "2", "--out", str(tmp_path / "never"))
    assert refused.returncode == 2
    assert refused.stderr.startswith('cloudwar: error: events[0] ("typo", 2026Q2): providers.Alibaba.strategy: ')
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert not (tmp_path / "never").exists()


def test_the_figure_marks_each_event_on_every_panel(tmp_path):
    events = [{"at": 3, "name": "price war", "set": {"providers.Alibaba.strategy.price_ratio": 0.8}}]
    model = CloudMarket(scenario(events, quarters=5), rng=1)
    results = model.run()
    fig = plots.figure(results, events=[(e.step, e.name) for e in model.events])
    drawn = [ax for ax in fig.axes if ax.lines]
    for ax in drawn:
        marks = [line for line in ax.lines if line.get_gid() == plots.EVENT_GID]
        assert [tuple(line.get_xdata()) for line in marks] == [(3, 3)]
    assert any(t.get_text() == "price war" for t in drawn[0].texts)
    without = plots.figure(results)
    assert not [line for ax in without.axes for line in ax.lines if line.get_gid() == plots.EVENT_GID]
    png = plot_results(results, tmp_path / "f.png", events=model.events)
    assert png.read_bytes().startswith(b"\x89PNG")


# ------------------------------------------------------------------------------------------------
# GPU supply as a provider field
# ------------------------------------------------------------------------------------------------
def test_gpu_supply_is_a_provider_field_a_number_or_per_region():
    s = load_scenario("baseline")
    assert {p.name: p.gpu_supply for p in s.providers if p.gpu_supply} == {"Tencent": {"*": 0.05}}
    both = load_scenario("baseline", {"providers.Tencent.gpu_supply.china": 0.03})  # the number stays for the rest
    assert both.providers[1].gpu_supply == {"*": 0.05, "china": 0.03}
    with pytest.raises(ScenarioError, match="no longer a strategy's: GPU supply is the provider's gpu_supply"):
        load_scenario("baseline", {"providers.Tencent.strategy.max_capacity_addition": 0.05})
