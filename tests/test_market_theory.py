"""The engine against theory: logit Bertrand (Calvano et al. 2020) and Bass diffusion (facts.md)."""

import copy

import numpy as np
import pytest

from cloudwar import CloudMarket
from cloudwar.scenario import parse_scenario, read_scenario_toml


def calvano(n_firms: int = 2, strategy: str = "best_response", **changes) -> CloudMarket:
    raw = read_scenario_toml("calvano_duopoly")
    firm = raw["providers"][0]
    raw["providers"] = []
    for i in range(n_firms):
        f = copy.deepcopy(firm)
        f["name"] = f"Firm {i + 1}"
        f["strategy"] = {"kind": strategy, "capex_rule": "none"}
        raw["providers"].append(f)
    raw.update(changes)
    return CloudMarket(parse_scenario(raw), rng=changes.pop("seed", 7) if "seed" in changes else 7)


def prices(model: CloudMarket) -> np.ndarray:
    return model.prices[:, 0, 0]


def test_two_best_responders_converge_to_the_nash_price():
    model = calvano(2)
    model.run()
    np.testing.assert_allclose(prices(model), 1.47293, atol=5e-5)  # 4 decimals, facts.md


def test_nash_first_order_condition_holds():
    model = calvano(2)
    model.run()
    p = prices(model)
    curve = model.demand_curve(0, 0)
    share = curve.quantities(p) / model.enterprises.n
    np.testing.assert_allclose(p - 1.0, 0.25 / (1.0 - share), atol=1e-6)


def test_three_best_responders_converge_to_the_three_firm_nash_price():
    model = calvano(3)
    model.run()
    np.testing.assert_allclose(prices(model), 1.37016, atol=5e-5)


def test_joint_profit_maximisation_gives_the_monopoly_price():
    model = calvano(2, strategy="joint_profit", quarters=3)
    model.run()
    np.testing.assert_allclose(prices(model), 1.92498, atol=5e-5)


def test_simulated_demand_is_the_logit_and_profits_match_theory():
    # 200,000 identical enterprises, everyone re-chooses every quarter: sampled shares are the logit.
    model = calvano(2, enterprises=200_000, quarters=25)
    results = model.run()
    last = results[results.quarter == 25]
    share = last[(last.metric == "customer_share") & (last.region == "market") & (last["product"] == "cloud")]
    customers = last[(last.metric == "customers") & (last.region == "market") & (last["product"] == "cloud")]
    n = model.enterprises.n
    q_nash = np.exp((2 - 1.47293) / 0.25) / (2 * np.exp((2 - 1.47293) / 0.25) + 1.0)
    se = np.sqrt(q_nash * (1 - q_nash) / n)
    np.testing.assert_allclose(customers.value / n, q_nash, atol=4 * se)
    assert share.value.sum() == pytest.approx(1.0)
    income = last[(last.metric == "operating_income") & (last.region == "all") & (last["product"] == "all")]
    profit_se = 0.47293 * se
    np.testing.assert_allclose(income.value / n, 0.22293, atol=4 * profit_se + 1e-5)


def bass(t: np.ndarray, p: float = 0.03, q: float = 0.38) -> np.ndarray:
    e = np.exp(-(p + q) * t)
    return (1 - e) / (1 + (q / p) * e)


def adoption_path(network: str, n: int, quarters: int = 30, seed: int = 1) -> np.ndarray:
    """Share of adopters after each quarter, in a one-region world with only the AI product."""
    raw = read_scenario_toml("calvano_duopoly")
    raw["products"] = {"ai": raw["products"]["cloud"]}
    for f in raw["providers"]:
        for key in ("quality", "price", "marginal_cost"):
            f[key] = {"ai": f[key]["cloud"]}
        f["strategy"] = {"kind": "fixed_price", "capex_rule": "none"}
    raw.update(enterprises=n, quarters=quarters)
    raw["network"] = {"kind": network, "mean_degree": 6.0, "within_industry": 0.95}
    raw["adoption"] = {"innovation": 0.03, "imitation": 0.38, "initial_share": 0.0}
    model = CloudMarket(parse_scenario(raw), rng=seed)
    path = []
    for _ in range(quarters):
        model.step()
        path.append(model.ai_adoption)
    return np.array(path)


@pytest.mark.slow
def test_adoption_on_a_complete_graph_follows_the_bass_curve():
    path = adoption_path("complete", 20_000)
    t = np.arange(1, len(path) + 1)
    gap = np.abs(path - bass(t))
    assert gap.max() < 0.03, f"largest gap {gap.max():.4f} at quarter {gap.argmax() + 1}"


def test_adoption_is_slower_on_a_sparse_clustered_network():
    complete = adoption_path("complete", 5_000, quarters=15)
    clustered = adoption_path("clustered", 5_000, quarters=15)
    # Halfway up the curve the clustered network lags the mean-field one clearly.
    assert clustered[7] < complete[7] - 0.05
    assert clustered[-1] <= complete[-1] + 0.01
