import re
import sys
from importlib import resources

import pytest

from cloudwar import CloudMarket, ScenarioError, load_scenario, shipped_scenarios
from cloudwar.scenario import describe_fields, parse_override, parse_scenario, read_scenario_toml, scenario_to_dict
from cloudwar.strategies import REGISTRY, Strategy


def test_shipped_scenarios_load_and_round_trip():
    assert {"baseline", "calvano_duopoly"} <= set(shipped_scenarios())
    for name in shipped_scenarios():
        s = load_scenario(name)
        assert parse_scenario(scenario_to_dict(s)) == s


def test_every_shipped_value_cites_a_source():
    """Every key = value line carries a comment: facts.md, an assumption or calibrated (what the guide asks)."""
    for name in shipped_scenarios():
        text = (resources.files("cloudwar.scenario.data") / f"{name}.toml").read_text()
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", "[")) or "=" not in stripped:
                continue
            if stripped.startswith(("name", "description", "unit", "extends", "source")):
                continue
            comment = line.split("#", 1)[1] if "#" in line else ""
            assert re.search(r"facts\.md|history\.(csv|md)|assumption|calibrated", comment), (
                f"{name}.toml:{number}: {line}"
            )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"quarters": 0}, "quarters: must be >= 1"),
        ({"enterprises": "many"}, "enterprises: expected a whole number"),
        ({"discount_rate": -0.1}, "discount_rate: must be >= 0"),
        ({"capacity.useful_life": 2.5}, "capacity.useful_life: expected a whole number"),
        ({"regions.china.enterprise_share": 1.2}, "enterprise_share: must be <= 1"),
        ({"providers.AWS.presence.china": 1.5}, "presence.china: must be between 0 and 1"),
        ({"providers.AWS.price.cloud": -1.0}, "price.cloud: must be >= 0"),
        ({"providers.AWS.capex_per_unit": -3.0}, "capex_per_unit: must be >= 0"),
        ({"network.kind": "random"}, "network.kind: must be one of"),
        ({"adoption.nope": 1}, "unknown key 'adoption.nope'"),
        ({"providers.AWS.strategy.kind": "telepathy"}, "unknown strategy 'telepathy'"),
        ({"providers.AWS.strategy": {"kind": "cost_plus", "margin": 3}}, "unknown parameter 'margin'"),
        ({"providers.AWS.strategy": {"kind": "cost_plus", "markup": -1}}, "parameter 'markup' must be"),
        ({"products.tea": {}}, "unknown key 'products.tea'"),
    ],
)
def test_bad_values_are_named_in_one_line(overrides, message):
    with pytest.raises(ScenarioError, match=re.escape(message)) as err:
        load_scenario("baseline", overrides)
    assert "\n" not in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("quarters = [\n")
    with pytest.raises(ScenarioError, match="malformed TOML"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="unknown scenario 'nothing'"):
        load_scenario("nothing")


def test_overrides_are_typed_like_toml():
    assert parse_override("quarters=12") == ("quarters", 12)
    assert parse_override("choice.network_weight = 0.5") == ("choice.network_weight", 0.5)
    assert parse_override("network.kind=complete") == ("network.kind", "complete")
    assert parse_override("capacity.limited=false") == ("capacity.limited", False)
    s = load_scenario("baseline", {"providers.Alibaba.price.ai": 0.2, "enterprises": 123})
    alibaba = next(p for p in s.providers if p.name == "Alibaba")
    assert alibaba.price["ai"] == {"*": 0.2}
    assert s.enterprises == 123


def test_a_theory_world_sets_quality_cost_outside_option_and_scale_for_any_number_of_firms():
    raw = read_scenario_toml("calvano_duopoly")
    raw["providers"] = [
        dict(raw["providers"][0], name=f"F{i}", quality={"cloud": 2.0 + i / 10}, marginal_cost={"cloud": 1.0 - i / 10})
        for i in range(4)
    ]
    raw["products"]["cloud"].update(outside_quality=0.5, logit_scale=0.3)
    s = parse_scenario(raw)
    model = CloudMarket(s, rng=0)
    assert model.quality[:, 0, 0].tolist() == [2.0, 2.1, 2.2, 2.3]
    assert [p.base_cost[0, 0] for p in model.providers_list] == pytest.approx([1.0, 0.9, 0.8, 0.7])
    assert model.products[0].outside_quality == 0.5 and model.products[0].logit_scale == 0.3


class HalfOfRivals(Strategy):
    kind = "test_half_of_rivals"

    def set_prices(self, provider, market):
        return 0.5 * market.rival_prices(provider)


def test_a_user_strategy_plugs_in_by_name_or_import_path(monkeypatch):
    assert REGISTRY["test_half_of_rivals"] is HalfOfRivals
    monkeypatch.setitem(sys.modules, "my_strategies", sys.modules[__name__])
    for kind in ("test_half_of_rivals", "my_strategies:HalfOfRivals"):
        model = CloudMarket(
            "calvano_duopoly", rng=0, overrides={"providers.Firm 1.strategy": {"kind": kind}, "quarters": 1}
        )
        model.step()
        assert model.providers_list[0].prices[0, 0] == pytest.approx(0.5 * 1.6)
    with pytest.raises(ScenarioError, match="cannot import strategy module"):
        load_scenario("calvano_duopoly", {"providers.Firm 1.strategy.kind": "no_such_module:X"})


def test_describe_lists_every_field_with_unit_and_meaning():
    rows = describe_fields()
    keys = {r[0] for r in rows}
    assert {
        "quarters",
        "choice.network_weight",
        "providers.<name>.capex_per_unit",
        "products.<name>.logit_scale",
    } <= keys
    assert all(unit and doc for _, unit, _, doc in rows)
