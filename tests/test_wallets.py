"""Contracts, multi-cloud wallets and the churn they give (issue 10).

Bands come from facts.md: fewer than 1% of cloud customers switch provider in a year (UK CMA,
2025), and 84-93% of organisations run several clouds (Flexera). The issue's bar: under 2% of
customers a year leave a provider entirely, most enterprises of meaningful size use two or more
providers, and shares move through who wins the renewing and new volume.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from cloudwar import CloudMarket
from cloudwar.model.demand import logit_probabilities
from cloudwar.model.market import DemandCurve

MAJOR = ["AWS", "Microsoft", "Google", "Alibaba", "Huawei", "Tencent"]


@pytest.fixture(scope="module")
def calibrated_run():
    """The calibrated baseline at the experiments' size, quarters 1-20."""
    model = CloudMarket("baseline", rng=0, enterprises=10_000)
    return model, model.run(20)


def _yearly(results: pd.DataFrame, metric: str, provider: str, product: str) -> float:
    """A quarterly rate over quarters 5-20 as a yearly one: lost / held, summed over regions, x 4."""
    rows = results[
        (results.metric == metric)
        & (results.provider == provider)
        & (results["product"] == product)
        & (results.region != "all")
        & (results.quarter >= 5)
    ]
    return float(rows.groupby("quarter")["value"].mean().mean() * 4)


def test_few_customers_leave_a_provider_entirely(calibrated_run):
    model, results = calibrated_run
    # Exits weighted by customers: customers lost over customers held, per product, per year.
    for product in ("cloud", "ai"):
        k = model.product_names.index(product)
        lost = sum(rec["churned"][:, k, :].sum() for rec in model.records[4:])
        held = sum(rec["customers"][:, k, :].sum() for rec in model.records[3:-1])
        yearly = 4 * lost / held
        assert yearly < 0.02, f"{product}: {yearly:.2%} of customers a year leave a provider entirely"
        # Every major provider's own customers leave at under 2% a year too (where it has customers).
        for name in MAJOR:
            j = model.provider_names.index(name)
            lost_j = sum(rec["churned"][j, k, :].sum() for rec in model.records[4:])
            held_j = sum(rec["customers"][j, k, :].sum() for rec in model.records[3:-1])
            if held_j > 1000:
                assert 4 * lost_j / held_j < 0.03, f"{name} {product}: {4 * lost_j / held_j:.2%} a year"


def test_most_enterprises_of_meaningful_size_use_two_providers(calibrated_run):
    model, results = calibrated_run
    pop = model.enterprises
    n_p = len(model.provider_names)
    for k in range(len(model.product_names)):
        buying = pop.provider[k] < n_p
        sizable = buying & (pop.size >= np.median(pop.size))
        both = pop.second[k] < n_p
        assert both[sizable].mean() >= 0.84  # Flexera: 84-93% of organisations run several clouds
        assert both[buying & ~pop.two_slots].sum() == 0  # the smallest single-home
    world = results[(results.metric == "multi_homing") & (results.region == "all") & (results.quarter == 20)]
    # Flexera's band, to its stated precision (whole percents: 93% covers up to 93.5%)
    assert world["value"].between(0.75, 0.935).all()


def test_shares_move_through_signing_volume_not_exits():
    """A deep price cut moves volume share by points while exits stay rare (the size of the gain, capacity
    bound after a 90% cut, is the price war experiment's to report: 3.2 points here, 4.1 on average over
    seeds 1-8 with the 2025Q4 market levels)."""
    overrides = {"enterprises": 6000, "providers.Alibaba.strategy": {"kind": "price_cut", "cut": 0.9, "at_quarter": 2}}
    cut = CloudMarket("baseline", rng=1, overrides=overrides).run(10)
    base = CloudMarket("baseline", rng=1, enterprises=6000).run(10)

    def alibaba(results, metric, q):
        sel = results[
            (results.metric == metric)
            & (results.provider == "Alibaba")
            & (results.region == "china")
            & (results["product"] == "ai")
            & (results.quarter == q)
        ]
        return float(sel["value"].iloc[0])

    gain = alibaba(cut, "volume_share", 10) - alibaba(base, "volume_share", 10)
    assert gain > 0.02
    moved = cut[(cut.metric == "wallet_churn") & (cut.provider == "all") & (cut.region == "china")]
    exits = cut[(cut.metric == "churn") & (cut.provider == "all") & (cut.region == "china")]
    # More volume moves between providers than customers leave them.
    assert moved["value"].sum() > 1.5 * exits["value"].sum()


def test_a_list_price_reaches_customers_at_renewal(tmp_path):
    """Customers pay the price agreed at signing: a new list price spreads over one contract term."""
    scenario = tmp_path / "cut.toml"
    scenario.write_text(
        'extends = "baseline"\n'
        "[[providers]]\n"
        'name = "Alibaba"\n'
        'strategy = { kind = "fixed_price", capex_rule = "none", scarcity_response = 0.0 }\n'
        "[[events]]\n"
        'at = 3\nname = "list price cut"\nsource = "test"\n'
        'set = { "providers.Alibaba.strategy.multiplier" = 0.6 }\n'
    )
    model = CloudMarket(scenario, rng=2, enterprises=4000)
    new_price = 0.6 * model.providers_list[model.provider_names.index("Alibaba")].initial_prices[0, 0]
    results = model.run(9)
    sel = results[
        (results.provider == "Alibaba") & (results.region == "china") & (results["product"] == "cloud")
    ].pivot(index="quarter", columns="metric", values="value")
    assert (sel.loc[3:, "price"] == new_price).all() and (sel.loc[:2, "price"] > new_price).all()
    realised = sel["realised_price"]
    # Before the cut everyone paid the old price; the cut reaches about a quarter of the volume a
    # quarter (annual contracts, phases spread), all of it after one term.
    assert realised.loc[2] == pytest.approx(sel.loc[2, "price"])
    assert realised.loc[2] > realised.loc[3] > realised.loc[4] > realised.loc[5] > new_price
    assert realised.loc[7] == pytest.approx(new_price, rel=1e-12)
    first = (sel.loc[2, "price"] - realised.loc[3]) / (sel.loc[2, "price"] - new_price)
    assert 0.1 < first < 0.5


def test_one_quarter_contracts_charge_the_list_price_exactly():
    model = CloudMarket("baseline", rng=3, overrides={"enterprises": 2000, "products.cloud.contract_quarters": 1})
    model.run(4)
    k = model.product_names.index("cloud")
    for provider in model.providers_list:
        books = provider.history[-1]
        np.testing.assert_array_equal(books.realised_price[k], provider.prices[k])


def test_single_homing_is_a_setting():
    results = CloudMarket("baseline", rng=4, overrides={"enterprises": 2000, "choice.multi_homing_share": 0.0}).run(3)
    model_single = CloudMarket("baseline", rng=4, overrides={"enterprises": 2000, "choice.multi_homing_share": 0.0})
    assert model_single.enterprises.second is None and not model_single.enterprises.wallets
    assert (results[results.metric == "multi_homing"]["value"] == 0).all()


# --- the demand curve's expected shares are the expectation of the choice rule ----------------


def _rule_by_enumeration(v, members, wallet, cost, outside, mu, split_scale=1.0):
    """Expected volume shares of one enterprise under Enterprises._choose_wallets, by enumeration."""
    n_p = len(v)
    probs, p0 = logit_probabilities(v, outside, mu)
    plain = v.copy()
    for m in members:
        if m < n_p:
            plain[m] -= cost
    shares = np.zeros(n_p)

    def split(a, b):
        if b >= n_p:
            return {a: 1.0}
        wa = 1.0 / (1.0 + np.exp((plain[b] - plain[a]) / (mu * split_scale)))
        return {a: wa, b: 1.0 - wa}

    a, b = members
    for c in range(n_p):
        if probs[c] == 0:
            continue
        if c in (a, b):
            outcome = [(1.0, split(a, b) if wallet else {a: 1.0})]
        elif a >= n_p:  # a first-time buyer
            if not wallet:
                outcome = [(1.0, {c: 1.0})]
            else:
                w = np.exp((plain - plain.max()) / mu)
                w[c] = 0.0
                outcome = [(w[d] / w.sum(), split(c, d)) for d in range(n_p) if w[d] > 0] or [(1.0, {c: 1.0})]
        elif not wallet:
            outcome = [(1.0, {c: 1.0})]
        else:
            keep = a if (b >= n_p or v[a] >= v[b]) else b
            outcome = [(1.0, split(keep, c))]
        for chance, wallet_shares in outcome:
            for j, s in wallet_shares.items():
                shares[j] += probs[c] * chance * s
    return shares, p0


@pytest.mark.parametrize("case", range(6))
def test_wallet_shares_are_the_rules_expectation(case):
    rng = np.random.default_rng(case)
    n_p, m, mu = 5, 40, 0.25
    v = rng.normal(0.0, 0.6, size=(m, n_p))
    members = np.full((m, 2), n_p)
    wallet = rng.random(m) < 0.7
    for i in range(m):
        kind = i % 4
        picks = rng.choice(n_p, size=2, replace=False)
        if kind >= 1:
            members[i, 0] = picks[0]
        if kind >= 2 and wallet[i]:
            members[i, 1] = picks[1]
    cost = rng.uniform(0.2, 1.5, size=m)
    for i in range(m):  # the curve's utilities carry the switching cost on the members
        for slot in members[i]:
            if slot < n_p:
                v[i, slot] += cost[i]
    split_scale = (1.0, 2.0, 3.5)[case % 3]
    curve = DemandCurve(
        v,
        np.ones(m),
        np.ones(m),
        1.0,
        1.0,
        0.0,
        mu,
        members=members,
        wallet=wallet,
        switching_cost=cost,
        split_scale=split_scale,
    )
    got = curve.wallet_shares(v)
    for i in range(m):
        expected, p0 = _rule_by_enumeration(v[i], tuple(members[i]), bool(wallet[i]), cost[i], 0.0, mu, split_scale)
        np.testing.assert_allclose(got[i], expected, rtol=1e-9, atol=1e-12)
        assert got[i].sum() == pytest.approx(1.0 - p0, rel=1e-9) or members[i, 0] < n_p


def test_starting_shares_match_the_starting_draws():
    """The expected starting wallet shares (used by the calibration) are what the draws give."""
    model = CloudMarket("baseline", rng=5, enterprises=20_000)
    pop = model.enterprises
    k = model.product_names.index("cloud")
    for r in range(len(model.region_names)):
        rows = np.flatnonzero(pop.region == r)
        expected = pop.volumes(k, rows) @ pop.starting_shares(k, rows)
        expected = expected[:-1] / expected[:-1].sum()
        volume = pop.tally()[0][:, k, r]
        actual = volume / volume.sum()
        big = expected > 0.05
        np.testing.assert_allclose(actual[big], expected[big], rtol=0.12)


def test_combinations_of_members_are_all_distinct(calibrated_run):
    model, _ = calibrated_run
    pop = model.enterprises
    n_p = len(model.provider_names)
    for k in range(len(model.product_names)):
        assert not np.any((pop.provider[k] == pop.second[k]) & (pop.second[k] < n_p))
        assert np.all(pop.share[k][pop.second[k] < n_p] >= 0.5)
        assert np.all(pop.share[k][pop.second[k] == n_p] == 1.0)
        assert not np.any((pop.provider[k] == n_p) & (pop.second[k] < n_p))
    # Every pair of providers appears in some wallet: multi-homing is not one fixed pair.
    pairs = {tuple(sorted(p)) for p in zip(pop.provider[0], pop.second[0], strict=True) if p[1] < n_p}
    assert len(pairs) > len(list(itertools.combinations(range(4), 2)))
