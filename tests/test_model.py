"""The market engine end to end: reproducibility, accounting identities, capacity, outputs."""

import dataclasses

import mesa
import numpy as np
import pandas as pd
import pytest
from mesa.experimental.scenarios import Scenario as MesaScenario

from cloudwar import CloudMarket, ScenarioError, quarters
from cloudwar.model.enterprises import Enterprise, Enterprises
from cloudwar.model.providers import Books, Provider
from cloudwar.scenario import Scenario

SMALL = {"enterprises": 3000, "quarters": 8}


@pytest.fixture(scope="module")
def baseline_run():
    model = CloudMarket("baseline", rng=11, overrides=SMALL)
    return model, model.run()


def value(results, metric, provider="all", region="all", product="all", quarter=None):
    sel = results[
        (results.metric == metric)
        & (results.provider == provider)
        & (results.region == region)
        & (results["product"] == product)
    ]
    if quarter is not None:
        sel = sel[sel.quarter == quarter]
    return sel.set_index("quarter")["value"]


def test_same_seed_same_numbers_and_other_seeds_differ():
    a = CloudMarket("baseline", rng=3, overrides=SMALL).run()
    b = CloudMarket("baseline", rng=3, overrides=SMALL).run()
    c = CloudMarket("baseline", rng=4, overrides=SMALL).run()
    pd.testing.assert_frame_equal(a, b)
    assert not a["value"].equals(c["value"])


def test_results_table_is_tidy_and_complete(baseline_run):
    model, results = baseline_run
    assert list(results.columns) == ["quarter", "calendar", "provider", "region", "product", "metric", "value"]
    assert sorted(results.quarter.unique()) == list(range(1, 9))
    for metric in [
        "revenue_share",
        "customer_share",
        "price",
        "revenue",
        "operating_margin",
        "capex",
        "capacity_utilisation",
        "free_cash_flow",
        "npv",
        "ai_adoption",
        "churn",
        "hhi",
    ]:
        assert metric in set(results.metric), metric
    assert set(results.provider) == set(model.provider_names) | {"all"}
    assert set(results.region) == {"china", "global", "all"}
    assert not results.duplicated(["quarter", "provider", "region", "product", "metric"]).any()


def test_results_carry_the_calendar_quarter_beside_the_step(baseline_run):
    model, results = baseline_run
    assert model.config.start == "2025Q4"
    by_step = results.drop_duplicates("quarter").set_index("quarter")["calendar"]
    assert by_step[1] == "2025Q4" and by_step[2] == "2026Q1" and by_step[8] == "2027Q3"
    assert results["calendar"].tolist() == quarters.labels(model.config.start, results["quarter"])


def test_shares_add_up_to_one_in_every_market(baseline_run):
    _, results = baseline_run
    shares = results[(results.metric == "revenue_share") & (results.provider != "all") & (results["product"] != "all")]
    totals = shares.groupby(["quarter", "region", "product"])["value"].sum()
    np.testing.assert_allclose(totals, 1.0, atol=1e-9)


def test_revenue_is_price_times_served_volume(baseline_run):
    _, results = baseline_run
    per = results[(results.provider != "all") & (results.region != "all") & (results["product"] != "all")]
    wide = per.pivot_table(index=["quarter", "provider", "region", "product"], columns="metric", values="value")
    # Revenue is what customers pay under their contracts (the realised price), not the list price.
    np.testing.assert_allclose(wide["revenue"], wide["realised_price"] * wide["served_volume"], rtol=1e-12)
    assert (wide["served_volume"] <= wide["demand_volume"] * (1 + 1e-12)).all()


def test_cash_flow_identities(baseline_run):
    model, results = baseline_run
    r = 1.10**0.25
    for name in model.provider_names:
        fcf = value(results, "free_cash_flow", name)
        expected = (
            value(results, "operating_income", name)
            + value(results, "depreciation", name)
            - value(results, "capex", name)
        )
        np.testing.assert_allclose(fcf, expected, rtol=1e-9, atol=1.0)
        np.testing.assert_allclose(value(results, "cumulative_free_cash_flow", name), fcf.cumsum(), rtol=1e-9)
        npv = (fcf / r ** fcf.index.to_numpy()).cumsum()
        np.testing.assert_allclose(value(results, "npv", name), npv, rtol=1e-9)
        margin = value(results, "operating_margin", name)
        np.testing.assert_allclose(margin, value(results, "operating_income", name) / value(results, "revenue", name))


def test_starting_spend_matches_the_market_sizes():
    model = CloudMarket("baseline", rng=2, overrides={"enterprises": 4000})
    pop = model.enterprises
    for k, product in enumerate(model.product_names):
        prices = np.vstack([model.prices[:, k, :], np.zeros((1, len(model.region_names)))])
        # Each wallet's spend split between its two providers, at their prices.
        f = pop.share[k].astype(float)
        paid = f * prices[pop.provider[k], pop.region] + (1.0 - f) * prices[pop.second[k], pop.region]
        spend = np.bincount(pop.region, weights=model.enterprises.volumes(k) * paid)
        for r, region in enumerate(model.region_names):
            assert spend[r] == pytest.approx(model.config.regions[region].market_size[product], rel=1e-9)


def test_hhi_matches_the_shares(baseline_run):
    _, results = baseline_run
    last = results[results.quarter == 8]
    shares = last[
        (last.metric == "revenue_share")
        & (last.provider != "all")
        & (last.region == "china")
        & (last["product"] == "ai")
    ]["value"]
    hhi = value(last, "hhi", "all", "china", "ai")
    assert hhi.iloc[0] == pytest.approx((shares**2).sum() * 10_000)


def test_shortage_is_rationed_proportionally_and_lowers_service():
    # Alibaba stops investing: capacity retires while demand grows, so it must ration.
    model = CloudMarket(
        "baseline",
        rng=5,
        overrides={
            "enterprises": 3000,
            "quarters": 12,
            "providers.Alibaba.strategy": {"kind": "cost_plus", "capex_rule": "none"},
            "providers.Alibaba.initial_utilisation": 1.0,
        },
    )
    results = model.run()
    service = value(results, "service_level", "Alibaba", "china")
    assert service.iloc[-1] < 0.95
    short = service < 1
    utilisation = value(results, "capacity_utilisation", "Alibaba", "china")
    np.testing.assert_allclose(utilisation[short], 1.0, rtol=1e-9)  # served exactly what capacity allows
    np.testing.assert_allclose(value(results, "capex", "Alibaba"), 0.0)
    for product in model.product_names:  # every product served the same fraction
        served = value(results, "served_volume", "Alibaba", "china", product)
        demand = value(results, "demand_volume", "Alibaba", "china", product)
        np.testing.assert_allclose((served / demand)[short], service[short], rtol=1e-9)


def test_capex_becomes_capacity_after_the_build_lag():
    model = CloudMarket(
        "baseline",
        rng=1,
        overrides={
            "enterprises": 2000,
            "providers.Tencent.strategy": {"kind": "cost_plus", "capex_rule": "fixed", "capex": 1e9},
            "providers.Tencent.gpu_supply": {},  # unlimited: the test is about the lag, not the supply cap
        },
    )
    tencent = next(p for p in model.providers_list if p.name == "Tencent")
    lag = model.config.capacity.build_lag
    before = tencent.capacity_in_service(1 + lag).sum()
    before_lag = tencent.capacity_in_service(lag).sum()
    model.step()
    after = tencent.capacity_in_service(1 + lag).sum()
    per_unit = tencent.spec.capex_per_unit * model.hardware_factor(1)
    assert after - before == pytest.approx(1e9 / per_unit, rel=1e-9)
    assert tencent.capacity_in_service(lag).sum() == pytest.approx(before_lag, rel=1e-12)  # not before the lag


def test_unit_cost_falls_with_hardware_and_learning_and_cost_plus_follows():
    model = CloudMarket("baseline", rng=11, overrides={**SMALL, "providers.AWS.strategy": {"kind": "cost_plus"}})
    model.run()
    aws = next(p for p in model.providers_list if p.name == "AWS")
    hardware = model.hardware_factor(model.quarter + 1)
    learning = (aws.cumulative_volume / aws.starting_experience) ** -model.config.capacity.learning_exponent
    np.testing.assert_allclose(aws.unit_cost, aws.base_cost * learning[:, None] * hardware)
    assert np.all(aws.unit_cost < aws.base_cost)
    # cost_plus without a markup keeps each market's starting price / cost ratio
    np.testing.assert_allclose(aws.strategy.set_prices(aws, model), aws.unit_cost * aws.initial_prices / aws.base_cost)


def test_enterprise_agent_view_reads_the_arrays(baseline_run):
    model, _ = baseline_run
    e = model.enterprise(42)
    assert isinstance(e, Enterprise) and isinstance(e, mesa.Agent)
    assert e is model.enterprise(42)
    pop = model.enterprises
    assert e.region == model.region_names[pop.region[42]]
    assert e.size == pytest.approx(float(pop.size[42]))
    assert e.adopted_ai == bool(pop.adopted[42])
    cloud = e.providers["cloud"]
    j = pop.provider[0, 42]
    assert cloud == (model.provider_names[j] if j < len(model.provider_names) else None)
    assert set(e.utilities("cloud")) == set(model.provider_names)
    assert e.neighbours == [int(i) for i in model.network.neighbours(42)]
    with pytest.raises(IndexError):
        model.enterprise(10**9)


def test_providers_are_mesa_agents_and_the_datacollector_records(baseline_run):
    model, results = baseline_run
    assert all(isinstance(p, Provider) for p in model.providers)
    frame = model.datacollector.get_model_vars_dataframe()
    assert len(frame) == 8
    np.testing.assert_allclose(frame["ai_adoption"].iloc[-1], value(results, "ai_adoption", product="ai").iloc[-1])
    agents = model.datacollector.get_agenttype_vars_dataframe(Provider)
    assert set(agents["name"]) == set(model.provider_names)
    assert model.running is False


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ScenarioError, match="enterprises"):
        CloudMarket("baseline", overrides={"enterprises": 0})
    with pytest.raises(ScenarioError, match="unknown key 'choice.nope'"):
        CloudMarket("baseline", **{"choice.nope": 1})
    with pytest.raises(ScenarioError, match="no provider named 'Amazon'"):
        CloudMarket("baseline", overrides={"providers.Amazon.price.ai": 1.0})


def test_config_is_the_cloudwar_scenario_and_scenario_is_mesas():
    model = CloudMarket("baseline", rng=4, enterprises=700)
    assert isinstance(model.config, Scenario) and model.config.enterprises == 700
    # Mesa 3.5's Model keeps its own experiment record under ``scenario``; it holds the seed only.
    assert isinstance(model.scenario, MesaScenario) and not isinstance(model.scenario, Scenario)
    assert model.scenario.rng == 4 and model.scenario.model is model


def test_books_are_typed_records_that_add_up(baseline_run):
    model, results = baseline_run
    n_k, n_r = len(model.product_names), len(model.region_names)
    for provider in model.providers_list:
        assert len(provider.history) == model.quarter
        books = provider.history[-1]
        assert isinstance(books, Books) and books.quarter == model.quarter
        for name in ("revenue", "variable_cost", "operating_income", "served_volume"):
            assert getattr(books, name).shape == (n_k, n_r), name
        for name in ("capacity", "compute_demand", "capex", "depreciation", "service_level"):
            assert getattr(books, name).shape == (n_r,), name
        np.testing.assert_allclose(books.revenue, books.realised_price * books.served_volume, rtol=1e-12)
        cash = books.operating_income.sum() + books.depreciation.sum() - books.capex.sum()
        assert books.free_cash_flow == pytest.approx(cash, rel=1e-9, abs=1.0)
        assert books.cumulative_free_cash_flow == pytest.approx(sum(b.free_cash_flow for b in provider.history))
        assert value(results, "revenue", provider.name, quarter=model.quarter).iloc[0] == books.revenue.sum()
        with pytest.raises(dataclasses.FrozenInstanceError):
            books.revenue = books.revenue * 2


def test_enterprises_are_one_agent_set_whose_tally_counts_the_arrays(baseline_run):
    model, results = baseline_run
    firms = model.enterprises
    assert isinstance(firms, Enterprises) and model.population is firms and firms.model is model
    assert firms.n == 3000 and firms.provider.shape == (len(model.product_names), 3000)
    volume, customers, realised = firms.tally()
    n_p = len(model.provider_names)
    log = np.array(model.price_log)  # (quarters + 1, P, K, R)
    assert firms.wallets  # the baseline splits spend between two providers
    for k in range(len(model.product_names)):
        volumes = firms.volumes(k)
        for j in range(n_p):
            for r in range(len(model.region_names)):
                first = (firms.provider[k] == j) & (firms.region == r)
                second = (firms.second[k] == j) & (firms.region == r)
                assert customers[j, k, r] == first.sum() + second.sum()
                share = np.where(first, firms.share[k], 0.0) + np.where(second, 1.0 - firms.share[k], 0.0)
                assert volume[j, k, r] == pytest.approx((volumes * share).sum(), rel=1e-9)
                # The realised price: each customer's contract price (its signing quarter's list price).
                paid = (volumes * share * log[firms.signed[k], j, k, r]).sum()
                assert realised[j, k, r] * volume[j, k, r] == pytest.approx(paid, rel=1e-9)
    np.testing.assert_array_equal(model.records[-1]["customers"], customers)
    # AI volume only from adopters; adoption by region as recorded.
    ai = model.product_names.index("ai")
    assert np.all(firms.volumes(ai)[~firms.adopted] == 0) and np.all(firms.volumes(ai)[firms.adopted] > 0)
    np.testing.assert_allclose(model.records[-1]["ai_adoption"], firms.adoption_by_region())


def test_choosing_providers_reports_churn_and_keeps_neighbour_counts_current():
    model = CloudMarket("baseline", rng=6, enterprises=2500)
    firms = model.enterprises
    n_p, n_r = len(model.provider_names), len(model.region_names)
    for _ in range(3):
        before, second, share = firms.provider.copy(), firms.second.copy(), firms.share.copy()
        model.step()
        assert (before != firms.provider).any()  # some primaries changed
        for k in range(len(model.product_names)):
            # Churn counts customers that left a provider entirely: a member before, neither slot after.
            lost = np.zeros((n_p, n_r))
            for slot in (before[k], second[k]):
                left = (slot < n_p) & (slot != firms.provider[k]) & (slot != firms.second[k])
                np.add.at(lost, (slot[left], firms.region[left]), 1)
            np.testing.assert_array_equal(model.churn[:, k, :], lost)
            # Volume moved: what each member's share fell by, times the enterprise's volume.
            volumes = firms.volumes(k)
            moved = np.zeros((n_p, n_r))
            for slot, was in ((before[k], share[k]), (second[k], 1.0 - share[k])):
                now = np.where(firms.provider[k] == slot, firms.share[k], 0.0)
                now = now + np.where(firms.second[k] == slot, 1.0 - firms.share[k], 0.0)
                fell = (slot < n_p) & (now < was)
                np.add.at(moved, (slot[fell], firms.region[fell]), (volumes * (was - now))[fell])
            np.testing.assert_allclose(model.volume_churn[:, k, :], moved, rtol=1e-5, atol=1e-6 * volumes.max())
            # The incremental neighbour counts equal counts taken afresh from the network.
            for i in (0, 1234, 2499):
                neighbours = model.network.neighbours(i)
                fresh = np.bincount(firms.provider[k, neighbours], minlength=n_p + 1) / max(len(neighbours), 1)
                np.testing.assert_allclose(firms.neighbour_counts[k].shares(np.array([i]))[0], fresh, atol=1e-6)
        adopted = np.array([firms.adopted[model.network.neighbours(i)].mean() for i in (0, 1234, 2499)])
        np.testing.assert_allclose(firms.adoption_counts.state_share(np.array([0, 1234, 2499]), 1), adopted, atol=1e-6)
