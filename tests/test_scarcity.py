"""The scarcity rule every strategy shares (issue 10, item 4): a provider that rations does not keep undercutting.

:meth:`Strategy.price_scarcity` runs after every strategy's ``set_prices``: in a region where the
provider served only a share s < 1 of its demand last quarter, a premium on its prices there grows
by s^-scarcity_response a quarter (at most max_premium) and its prices do not fall; once it serves
everyone, the premium decays by premium_decay a quarter.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pytest

from cloudwar import CloudMarket
from cloudwar.scenario import apply_overrides, parse_scenario, read_scenario_toml
from cloudwar.strategies import REGISTRY, Strategy, describe_strategies
from cloudwar.strategies.base import RATIONED, rival_price_index

SHIPPED = sorted(kind for kind, cls in REGISTRY.items() if cls.__module__.startswith("cloudwar.strategies."))
#: The shipped kinds with prices of their own (all of them today): the rule must reach every one.
PRICED = [kind for kind in SHIPPED if REGISTRY[kind].set_prices is not Strategy.set_prices]


@dataclass
class Trace:
    """One provider's quarters in one region: what it served, charged and the premium it applied."""

    served: list[float] = field(default_factory=list)  # service level in the region, each quarter
    prices: list[np.ndarray] = field(default_factory=list)  # (products,) USD per unit charged there
    premium: list[float] = field(default_factory=list)  # scarcity premium of the quarter's prices
    relative: list[float] = field(default_factory=list)  # AI price / rivals' average selling price

    def rationed_before(self, t: int) -> bool:
        """Whether the provider rationed in the quarter before quarter index ``t`` (0-based)."""
        return self.served[t - 1] < RATIONED


def trace(model: CloudMarket, name: str, region: str, quarters: int) -> Trace:
    """Step ``model`` ``quarters`` times and record provider ``name`` in ``region``."""
    provider = next(p for p in model.providers_list if p.name == name)
    r = model.region_names.index(region)
    ai = model.product_names.index("ai") if "ai" in model.product_names else 0
    out = Trace()
    for _ in range(quarters):
        model.step()
        out.served.append(float(provider.history[-1].service_level[r]))
        out.prices.append(provider.prices[:, r].copy())
        out.premium.append(float(provider.strategy.scarcity_premium_[r]))
        index = rival_price_index(provider, model)
        out.relative.append(float(provider.prices[ai, r] / index[ai, r]))
    return out


def assert_the_rule_holds(t: Trace, response: float = 0.5, decay: float = 0.05, cap: float = 2.0) -> None:
    """Quarter by quarter: rationed -> premium grows by s^-response, prices do not fall; served -> it decays."""
    for q in range(1, len(t.served)):
        if t.rationed_before(q):
            grown = min(t.premium[q - 1] * max(t.served[q - 1], 1e-3) ** -response, cap)
            assert t.premium[q] == pytest.approx(grown, rel=1e-12), q
            assert np.all(t.prices[q] >= t.prices[q - 1]), q
        else:
            assert t.premium[q] == pytest.approx(max(t.premium[q - 1] * (1 - decay), 1.0), rel=1e-12), q


# --------------------------------------------------------------------------------------------
# The symptom: share_first rationing China at prices 10% under its rivals
# --------------------------------------------------------------------------------------------
#: Alibaba's GPU supply for China cut to 2% a quarter (its capex plan needs far more), then lifted
#: in quarter 11 (its orders arrive build_lag = 2 quarters later), so that it rations and then serves.
LIMITED = {"enterprises": 3000, "quarters": 20, "providers.Alibaba.gpu_supply": {"china": 0.02}}
LIFT = {"at": 11, "name": "GPUs arrive", "set": {"providers.Alibaba.gpu_supply.china": 0.5}}


def gpu_limited_alibaba(**overrides) -> Trace:
    raw = apply_overrides(read_scenario_toml("baseline"), {**LIMITED, **overrides})
    raw["events"] = [LIFT]
    model = CloudMarket(parse_scenario(raw), rng=3)
    assert type(next(p for p in model.providers_list if p.name == "Alibaba").strategy).kind == "share_first"
    return trace(model, "Alibaba", "china", 20)


@pytest.fixture(scope="module")
def with_rule() -> Trace:
    return gpu_limited_alibaba()


@pytest.fixture(scope="module")
def without_rule() -> Trace:
    return gpu_limited_alibaba(**{"providers.Alibaba.strategy.scarcity_response": 0})


def test_without_the_rule_share_first_undercuts_while_it_rations(without_rule):
    """The behaviour issue 10 reports, kept as the opt-out (scarcity_response = 0)."""
    t = without_rule
    start = t.relative[0]  # its starting price against the rivals' average selling price
    war = range(3, 12)  # quarters 4-12: short of GPUs
    assert max(t.served[q] for q in war) < 0.9 and min(t.served[q] for q in war) > 0.7  # serves 70-90%
    # ... at prices under its rivals' (against them, below where it started), some 5-10% under
    assert all(t.relative[q] < start for q in war) and np.mean([t.relative[q] for q in war]) < 0.95 * start
    assert t.premium == [1.0] * len(t.premium)


def test_share_first_that_rations_stops_undercutting_and_rises_against_rivals(with_rule, without_rule):
    t = with_rule
    assert_the_rule_holds(t)
    rationed = [q for q in range(1, 11) if t.rationed_before(q)]
    assert len(rationed) >= 6  # the setting does ration it, quarter after quarter
    first, last = rationed[0], rationed[-1]
    for q in rationed:  # its price there never falls while it rations...
        assert np.all(t.prices[q] >= t.prices[q - 1])
    # ... and rises against its rivals' average selling price, from undercutting to well above it
    start = t.relative[0]
    assert t.relative[last] > 1.2 * start and t.relative[last] > t.relative[first] + 0.3 * start
    assert t.relative[last] > 1.2 * max(without_rule.relative[q] for q in rationed)
    # pricing its scarcity, it rations less than the provider that keeps undercutting
    assert np.mean([t.served[q] for q in range(3, 10)]) > np.mean([without_rule.served[q] for q in range(3, 10)])


def test_once_everyone_is_served_the_premium_decays(with_rule):
    t = with_rule
    served = [q for q in range(12, 20) if not t.rationed_before(q)]
    assert len(served) >= 6  # the GPUs arrived: it serves everyone from quarter 12 or so
    peak = max(t.premium)
    assert peak > 1.3
    for q in served:
        assert t.premium[q] == pytest.approx(max(t.premium[q - 1] * 0.95, 1.0), rel=1e-12)
    assert t.premium[-1] < 0.8 * peak
    assert np.all(t.prices[-1] < t.prices[11])  # and its prices come down again


# --------------------------------------------------------------------------------------------
# Every playbook, one rule
# --------------------------------------------------------------------------------------------
#: Parameters a kind needs to play the Calvano duopoly's one product and one region.
FOR_DUOPOLY = {"price_cut": {"product": "cloud", "region": "market", "cut": 0.2, "at_quarter": 3}}


def limited_duopoly(kind: str, **params) -> CloudMarket:
    """The Calvano duopoly with capacity limited and no capex: Firm 1's capacity retires and it starts rationing.

    Firm 1 plays ``kind``; Firm 2 keeps its best response. One vintage of the starting capacity
    retires each quarter and nothing replaces it, so Firm 1 runs short from about quarter 6.
    """
    raw = copy.deepcopy(read_scenario_toml("calvano_duopoly"))
    raw.update(enterprises=500, quarters=12)
    raw["capacity"]["limited"] = True
    for firm in raw["providers"]:
        firm["capex_per_unit"] = 1.0
        firm["strategy"] = {**firm["strategy"], "capex_rule": "none"}
    raw["providers"][0]["strategy"] = {"kind": kind, "capex_rule": "none", **FOR_DUOPOLY.get(kind, {}), **params}
    return CloudMarket(parse_scenario(raw), rng=1)


@pytest.mark.parametrize("kind", PRICED)
def test_every_playbook_prices_its_own_scarcity_by_the_shared_rule(kind):
    t = trace(limited_duopoly(kind), "Firm 1", "market", 12)
    assert any(t.rationed_before(q) for q in range(1, 12)), "the setting must ration Firm 1"
    assert max(t.premium) > 1.05
    assert_the_rule_holds(t)


@pytest.mark.parametrize("kind", PRICED)
def test_scarcity_response_zero_turns_the_rule_off(kind):
    t = trace(limited_duopoly(kind, scarcity_response=0.0), "Firm 1", "market", 12)
    assert any(t.rationed_before(q) for q in range(1, 12))
    assert t.premium == [1.0] * 12


def test_the_rule_multiplies_the_strategys_prices_and_holds_them_while_rationed():
    """fixed_price, whose own price never moves, shows the rule's arithmetic alone."""
    t = trace(limited_duopoly("fixed_price"), "Firm 1", "market", 12)
    own = 1.6  # the duopoly's starting price, fixed_price's price for ever
    for q in range(1, 12):
        scarce = own * t.premium[q]
        expected = max(scarce, t.prices[q - 1][0]) if t.rationed_before(q) else scarce
        assert t.prices[q][0] == pytest.approx(expected, rel=1e-12), q
    off = trace(limited_duopoly("fixed_price", scarcity_response=0.0), "Firm 1", "market", 12)
    assert [p[0] for p in off.prices] == [own] * 12  # opted out: the strategy's prices, exactly


def test_the_parameters_are_every_strategys_and_tencent_keeps_its_defaults():
    common = {row.name: row for row in describe_strategies()[0].params}
    assert {"scarcity_response", "premium_decay", "max_premium"} <= set(common)
    assert (common["scarcity_response"].default, common["premium_decay"].default) == ("0.5", "0.05")
    assert common["max_premium"].default == "2"
    for kind in SHIPPED:
        strategy = REGISTRY[kind]()
        assert (strategy.scarcity_response, strategy.premium_decay, strategy.max_premium) == (0.5, 0.05, 2.0), kind


def test_theory_scenarios_have_unlimited_capacity_so_the_rule_never_acts():
    model = CloudMarket("calvano_duopoly", rng=1, overrides={"enterprises": 200, "quarters": 6})
    model.run()
    for p in model.providers_list:
        assert all(np.all(b.service_level == 1.0) for b in p.history)
        assert np.all(p.strategy.scarcity_premium_ == 1.0)
