"""Strategy parameters declared once (param()), one validator, describe, and the start hook for learned state."""

import copy
import dataclasses
import inspect
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

from cloudwar import CloudMarket, ScenarioError, load_scenario
from cloudwar.scenario import StrategySpec, parse_scenario, read_scenario_toml
from cloudwar.strategies import (
    REGISTRY,
    MarginDiscipline,
    Param,
    PlatformEmbedded,
    QLearning,
    ShareFirst,
    Strategy,
    StrategyError,
    base,
    declared_parameters,
    describe_strategies,
    learning,
    make_strategy,
    optimising,
    param,
    playbooks,
)

SHIPPED = {kind: cls for kind, cls in REGISTRY.items() if cls.__module__.startswith("cloudwar.strategies.")}


def test_every_shipped_parameter_is_declared_with_unit_and_doc():
    assert {"fixed_price", "cost_plus", "share_first", "margin_discipline", "platform_embedded"} <= set(SHIPPED)
    assert {"price_cut", "best_response", "joint_profit", "q_learning"} <= set(SHIPPED)
    for kind, cls in SHIPPED.items():
        declared = declared_parameters(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        assert names and names == list(declared), kind  # every field, in field order
        for name, spec in declared.items():
            assert spec.unit.strip() and spec.doc.strip(), f"{kind}.{name}"
            spec.check(name, getattr(cls(), name))  # the default is accepted


def test_no_shipped_strategy_uses_the_old_require_helpers():
    for module in (playbooks, optimising, learning):
        source = inspect.getsource(module)
        assert "self.require" not in source, module.__name__
        assert 'getattr(self, "_' not in source, module.__name__


def bound_cases() -> list[tuple[str, str, object, str]]:
    """(kind, parameter, a value just outside a declared bound, the bound as the message writes it)."""
    cases = []
    for kind, cls in sorted(SHIPPED.items()):
        for name, spec in declared_parameters(cls).items():
            if spec.lo is not None:
                below = spec.lo if spec.lo_open else spec.lo - 1
                cases.append((kind, name, int(below) if spec.integer else below, f"{spec.lo:g}"))
            if spec.hi is not None:
                above = spec.hi + 1
                cases.append((kind, name, int(above) if spec.integer else above, f"{spec.hi:g}"))
    return cases


@pytest.mark.parametrize(("kind", "name", "bad", "bound"), bound_cases())
def test_every_declared_bound_gives_a_one_line_error(kind, name, bad, bound):
    spec = declared_parameters(SHIPPED[kind])[name]
    with pytest.raises(ScenarioError) as err:
        load_scenario("baseline", {"providers.Alibaba.strategy": {"kind": kind, name: bad}})
    text = str(err.value)
    assert "\n" not in text and text.startswith("providers.Alibaba.strategy: ")
    assert f"parameter '{name}' must be" in text and bound in text and f"({spec.unit})" in text
    assert text.endswith(f"got {bad!r}")


def test_bounds_are_inclusive_unless_declared_open():
    closed = Param(unit="fraction", doc="d", lo=0.0, hi=1.0)
    closed.check("x", 0.0)
    closed.check("x", 1.0)
    with pytest.raises(ScenarioError, match=r"^parameter 'x' must be > 0 and <= 1 \(per update\), got 0$"):
        Param(unit="per update", doc="d", lo=0.0, hi=1.0, lo_open=True).check("x", 0)
    Param(unit="per update", doc="d", lo=0.0, hi=1.0, lo_open=True).check("x", 1e-12)


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        ({"kind": "share_first", "capex_plan": float("inf")}, "parameter 'capex_plan' must be a finite number"),
        ({"kind": "margin_discipline", "max_step": float("nan")}, "parameter 'max_step' must be a finite number"),
        ({"kind": "margin_discipline", "match": True}, "parameter 'match' must be a finite number, got True"),
        ({"kind": "share_first", "plan_quarters": 12.0}, "parameter 'plan_quarters' must be a whole number"),
        ({"kind": "q_learning", "n_prices": "15"}, "parameter 'n_prices' must be a whole number"),
        ({"kind": "share_first", "price_basis": 3}, "parameter 'price_basis' must be one of rivals, cost, got 3"),
        ({"kind": "q_learning", "capex_rule": "lots"}, "parameter 'capex_rule' must be one of utilisation"),
        ({"kind": "price_cut", "product": 3}, "parameter 'product' must be text"),
        (
            {"kind": "share_first", "price_ratio": {"cloud": 1.0, "ai": {"china": 101, "global": 1.0}}},
            "parameter 'price_ratio.ai.china' must be between 0 and 100",
        ),
        ({"kind": "share_first", "price_ratio": {"cloud": 1.0, "gpu": 1.0}}, "'gpu' is not a product"),
        ({"kind": "share_first", "price_ratio": {"cloud": 1.0, "ai": {"china": 1.0}}}, "no value for region 'global'"),
        ({"kind": "q_learning", "price_high": 2.0}, "'price_low' and 'price_high' go together"),
        ({"kind": "q_learning", "price_low": 2.0, "price_high": 1.0}, "parameter 'price_high' must be > price_low"),
    ],
)
def test_types_finiteness_choices_and_tables_are_checked(strategy, message):
    with pytest.raises(ScenarioError) as err:
        load_scenario("baseline", {"providers.Alibaba.strategy": strategy})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_per_market_table_that_fits_the_scenario_is_accepted():
    table = {"cloud": 1.1, "ai": {"china": 0.5, "global": 0.9}}
    scenario = load_scenario("baseline", {"providers.Alibaba.strategy": {"kind": "share_first", "price_ratio": table}})
    alibaba = next(p for p in scenario.providers if p.name == "Alibaba")
    assert make_strategy(alibaba.strategy).price_ratio == table


@dataclass
class Declared(Strategy):
    """A user strategy in the new style, and one that changes a declared default."""

    fraction: float = param(0.5, unit="multiple of rivals' price", lo=0.0, hi=1.0, doc="price / rivals' price")


@dataclass
class DeclaredHotter(Declared):
    target_utilisation: float = 0.95
    fraction: float = 0.25


@dataclass
class OldStyle(Strategy):
    """A user strategy written the old way: undeclared fields checked with require*() in validate()."""

    fraction: float = 0.5
    steps: int = 3
    mode: str = "a"

    def validate(self) -> None:
        super().validate()
        self.require("fraction", 0.0, 1.0)
        self.require_int("steps", 1, 10)
        self.require_choice("mode", ("a", "b"))


def test_user_strategies_declare_with_param_or_use_the_old_require():
    assert Declared().fraction == 0.5
    with pytest.raises(ScenarioError, match=r"^parameter 'fraction' must be between 0 and 1 \(multiple"):
        Declared(fraction=2.0)
    # a subclass that only changes defaults keeps the declarations (its own and the base class's)
    assert declared_parameters(DeclaredHotter)["fraction"] is declared_parameters(Declared)["fraction"]
    assert DeclaredHotter().target_utilisation == 0.95
    with pytest.raises(ScenarioError, match="parameter 'target_utilisation' must be between 0.05 and 1"):
        DeclaredHotter(target_utilisation=0.0)
    with pytest.raises(ScenarioError, match="parameter 'fraction'"):
        DeclaredHotter(fraction=-1.0)
    # the old way still works, with the same messages
    assert OldStyle().steps == 3
    assert declared_parameters(OldStyle).keys() == declared_parameters(Strategy).keys()  # its own are undeclared
    with pytest.raises(ScenarioError, match=r"^parameter 'fraction' must be between 0 and 1, got 2$"):
        OldStyle(fraction=2)
    with pytest.raises(ScenarioError, match=r"^parameter 'steps' must be a whole number, got 2.5$"):
        OldStyle(steps=2.5)
    with pytest.raises(ScenarioError, match=r"^parameter 'mode' must be one of a, b, got 'c'$"):
        OldStyle(mode="c")
    with pytest.raises(ScenarioError, match="parameter 'capex'"):  # the base class's declarations still apply
        OldStyle(capex=-1.0)


def test_describe_lists_every_strategy_parameter_with_unit_bounds_and_meaning():
    rows = {row.kind: row for row in describe_strategies()}
    assert set(SHIPPED) <= set(rows) and "*" in rows
    common = {p.name: p for p in rows["*"].params}
    assert set(common) == set(declared_parameters(Strategy))
    assert common["target_utilisation"].unit == "fraction of capacity" and common["capex"].accepts == ">= 0"
    share_first = {p.name: p for p in rows["share_first"].params}
    assert share_first["capex_plan"][1:4] == ("3.8e+11", "RMB", ">= 0")
    assert share_first["price_ratio"].accepts == "[0, 100] per market" and share_first["price_ratio"].default == "unset"
    assert share_first["ecosystem_spend"].default == "3e+08"  # a changed default of a common parameter is listed
    assert "target_utilisation" not in share_first  # an unchanged one is not
    q = {p.name: p for p in rows["q_learning"].params}
    assert q["alpha"].accepts == "(0, 1]" and q["n_prices"].accepts == "whole number [2, 100]"
    for kind in SHIPPED:
        for p in rows[kind].params:
            assert p.unit not in ("", "?") and p.doc, f"{kind}.{p.name}"

    done = subprocess.run([sys.executable, "-m", "cloudwar.cli", "describe"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    plan = [line for line in lines if line.strip().startswith("capex_plan=")]
    assert len(plan) == 1 and "RMB" in plan[0] and "committed capex plan" in plan[0]
    alpha = [line for line in lines if line.strip().startswith("alpha=0.15")]
    assert len(alpha) == 1 and "per update" in alpha[0] and "(0, 1]" in alpha[0]
    assert any(line.strip().startswith("q_learning: Tabular Q-learning") for line in lines)


# --------------------------------------------------------------------------------------------
# Learned state: made by start(), names ending in _
# --------------------------------------------------------------------------------------------
def learned(strategy: Strategy) -> set[str]:
    return {name for name in vars(strategy) if name.endswith("_") or name.startswith("_")}


def test_fresh_strategies_have_no_learned_state():
    for kind in SHIPPED:
        assert learned(make_strategy(StrategySpec(kind=kind))) == set(), kind


def calvano_q(quarters: int) -> CloudMarket:
    raw = copy.deepcopy(read_scenario_toml("calvano_duopoly"))
    raw.update(enterprises=200, quarters=quarters)
    for firm in raw["providers"]:
        firm["strategy"] = {"kind": "q_learning", "beta": 1e-3}
    return CloudMarket(parse_scenario(raw), rng=2)


def test_q_learning_has_no_learned_state_before_start_and_has_it_after():
    model = calvano_q(2)
    strategy = model.providers_list[0].strategy
    assert isinstance(strategy, QLearning) and learned(strategy) == set()
    with pytest.raises(AttributeError, match="markets_"):
        strategy.learners()
    model.step()
    assert learned(strategy) == {"markets_", "scarcity_premium_"}  # its own, and the shared scarcity rule's
    (learner,) = strategy.learners().values()
    assert list(strategy.learners()) == [(0, 0)] and learner.t == 0  # built in quarter 1, nothing learned yet
    model.step()
    assert learner.t == 1 and strategy.learners()[(0, 0)] is learner  # start ran once: the same learner learns


def test_the_playbooks_make_their_learned_state_in_start():
    model = CloudMarket("baseline", rng=0, overrides={"enterprises": 600})
    by_type = {type(p.strategy): p.strategy for p in model.providers_list}
    assert {ShareFirst, MarginDiscipline, PlatformEmbedded} <= set(by_type)
    assert all(learned(p.strategy) == set() for p in model.providers_list)
    model.step()
    assert learned(by_type[ShareFirst]) == {"start_ratio_", "harvest_", "scarcity_premium_"}
    assert learned(by_type[MarginDiscipline]) == {"controller_", "rival_match_", "scarcity_premium_"}
    assert learned(by_type[PlatformEmbedded]) == {"rival_match_", "scarcity_premium_"}  # no premium of its own


USER_MODULE = """
from dataclasses import dataclass
from cloudwar.strategies import Strategy

STARTS = []

@dataclass
class CountsStarts(Strategy):
    def start(self, provider, market):
        super().start(provider, market)
        STARTS.append((provider.name, market.quarter))
        self.first_price_ = provider.prices.copy()

    def set_prices(self, provider, market):
        return self.first_price_.copy()

@dataclass
class FailsToStart(Strategy):
    def start(self, provider, market):
        raise RuntimeError("no state today")
"""


def test_start_runs_once_before_the_first_decision_and_its_errors_name_the_provider(tmp_path, monkeypatch):
    (tmp_path / "start_hooks.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    # without the shared scarcity rule, so that its prices are exactly those set_prices returns
    counts = {"kind": "start_hooks:CountsStarts", "scarcity_response": 0}
    model = CloudMarket("baseline", rng=1, overrides={"enterprises": 500, "providers.AWS.strategy": counts})
    aws = next(p for p in model.providers_list if p.name == "AWS")
    starting = aws.prices.copy()
    for _ in range(3):
        model.step()
    import start_hooks

    assert start_hooks.STARTS == [("AWS", 1)]
    assert (aws.prices == starting).all()
    failing = CloudMarket(
        "baseline", rng=1, overrides={"enterprises": 500, "providers.AWS.strategy": "start_hooks:FailsToStart"}
    )
    with pytest.raises(
        StrategyError, match=r"strategy of AWS \(start_hooks:FailsToStart\), quarter 1: RuntimeError: no state"
    ):
        failing.step()


def test_base_module_keeps_the_interface_only():
    """The split: the interface and shared rules in base, each family of strategies in its own module."""
    assert not [
        name
        for name, obj in vars(base).items()
        if isinstance(obj, type) and issubclass(obj, Strategy) and obj.__dict__.get("kind")
    ]
    assert {cls.__module__ for cls in SHIPPED.values()} == {
        "cloudwar.strategies.playbooks",
        "cloudwar.strategies.optimising",
        "cloudwar.strategies.learning",
    }
