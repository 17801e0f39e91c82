"""The fast engine (CloudMarket) against the plain-Mesa reference (cloudwar.model.reference).

Two kinds of test:

* **Shared randomness, identical results.** ``ReferenceMarket(scenario, rng=seed)`` starts where
  ``CloudMarket(scenario, rng=seed)`` starts and consumes the same random stream, so every
  enterprise must end every quarter in the same state: same providers, same adoption, hence
  the same wallets, customers, churn and adoption curve, exactly. Prices, volumes and revenue are
  floats (the engine's wallet splits come from float32 utilities), compared to ``RTOL``.
* **Independent randomness, same distribution.** Same starting market, independent random
  streams for the quarters: the reference's mean over ``REFERENCE_RUNS`` runs must lie within
  ``TOLERANCE_SE`` standard errors of the engine's mean over ``ENGINE_RUNS`` runs, for every
  summary, under each of ``SETTINGS`` (wallets on and off, contracts of 4 and 1 quarters). The
  standard deviation is pooled over both sets of runs (the two implementations of one model
  share it under the hypothesis being tested); standard error = sd x sqrt(1 / REFERENCE_RUNS +
  1 / ENGINE_RUNS). Summaries: customer, volume and revenue share of every provider in each
  product at the last quarter, AI adoption per region every third quarter, mean churn both ways
  (customers leaving entirely, volume moved) and the multi-homing share per product (2,500
  enterprises, 24 quarters). The same comparison is checked to flag engines with slightly
  different rules (the baseline's imitation 13% lower, network weight 40% lower, switching cost
  10% lower, multi-homing share 5 points lower), so it has teeth.
"""

from __future__ import annotations

import numpy as np
import pytest

from cloudwar.model.market import CloudMarket
from cloudwar.model.reference import EnterpriseAgent, ReferenceMarket
from cloudwar.scenario import load_scenario

# Bonferroni over the ~76 summaries of one setting at a family-wise false-alarm rate of 0.1%,
# under a t with ENGINE_RUNS + REFERENCE_RUNS - 2 degrees of freedom: 4.9, rounded up. (A flat
# 4 SE raised false alarms on summaries near saturation or of small shares.)
TOLERANCE_SE = 5.0
ENGINE_RUNS = 40
REFERENCE_RUNS = 5


# The engine computes choice utilities in float32, so the wallet splits it derives from them (and
# the volumes, revenue and realised prices that follow) agree with the reference's float64 to
# about 1e-7 relative per enterprise; both keep the shares in float32 (an ulp of 1 is 6e-8).
RTOL = 1e-5
SHARE_ATOL = 1e-5  # one enterprise's share
SHARE_ULP = 1e-6  # of a product's whole volume or revenue
# Contracts of one quarter for every product (every buyer signs every quarter at the list price).
ONE_QUARTER = {"products.cloud.contract_quarters": 1, "products.ai.contract_quarters": 1}


def _assert_same_quarter(fast: CloudMarket, ref: ReferenceMarket) -> None:
    a, b = fast.records[-1], ref.records[-1]
    q = a["quarter"]
    assert b["quarter"] == q
    np.testing.assert_array_equal(a["customers"], b["customers"], err_msg=f"customers, quarter {q}")
    np.testing.assert_array_equal(a["churned"], b["churned"], err_msg=f"churn, quarter {q}")
    np.testing.assert_array_equal(a["ai_adoption"], b["ai_adoption"], err_msg=f"AI adoption, quarter {q}")
    for fast_count, ref_count in zip(a["multi_homing"], b["multi_homing"], strict=True):
        np.testing.assert_array_equal(fast_count, ref_count, err_msg=f"multi-homing, quarter {q}")
    np.testing.assert_allclose(a["price"], b["price"], rtol=RTOL, err_msg=f"prices, quarter {q}")
    realised = [np.array([book.realised_price for book in rec["books"]]) for rec in (a, b)]
    np.testing.assert_allclose(*realised, rtol=RTOL, err_msg=f"realised prices, quarter {q}")
    revenue = [np.array([book.revenue for book in rec["books"]]) for rec in (a, b)]
    for name, (x, y) in {
        "demand": (a["demand_volume"], b["demand_volume"]),
        "volume moved": (a["volume_moved"], b["volume_moved"]),
        "revenue": tuple(revenue),
    }.items():
        _assert_close_by_product(x, y, a["demand_volume"] if name != "revenue" else revenue[0], f"{name}, quarter {q}")


def _assert_close_by_product(x: np.ndarray, y: np.ndarray, scale: np.ndarray, what: str) -> None:
    """(P, K, R) tables equal to RTOL, or to SHARE_ULP of the product's whole (``scale``) where small.

    A second provider's slice is 1 - the primary's float32 share, so its error is absolute (up to
    an ulp of 1 times the wallet's volume), not relative; so is that of volume moved, a difference
    of shares.
    """
    for k in range(x.shape[1]):
        atol = SHARE_ULP * np.abs(scale[:, k]).sum()
        np.testing.assert_allclose(x[:, k], y[:, k], rtol=RTOL, atol=atol, err_msg=f"{what}, product {k}")


def _assert_same_enterprises(fast: CloudMarket, ref: ReferenceMarket) -> None:
    pop, agents = fast.enterprises, ref.enterprise_list
    np.testing.assert_array_equal(pop.provider.T, [e.providers for e in agents])
    np.testing.assert_array_equal(pop.signed.T, [e.signed for e in agents])
    np.testing.assert_array_equal(pop.adopted, [e.adopted for e in agents])
    np.testing.assert_array_equal(pop.adopted_quarter, [e.adopted_quarter for e in agents])
    if pop.wallets:
        np.testing.assert_array_equal(pop.two_slots, [e.wallet for e in agents])
        np.testing.assert_array_equal(pop.second.T, [e.seconds for e in agents])
        np.testing.assert_allclose(pop.share.T, [e.shares for e in agents], atol=SHARE_ATOL)
    else:
        assert not any(e.wallet for e in agents)
        assert all(j == len(fast.providers_list) for e in agents for j in e.seconds)


def _wallet_moves(before: tuple[np.ndarray, np.ndarray], fast: CloudMarket) -> tuple[int, int]:
    """Since ``before`` (primaries, seconds): wallets a newcomer entered, and first-time wallet buyers given a second."""
    pop, n_p = fast.enterprises, len(fast.providers_list)
    (a0, b0), a1, b1 = before, pop.provider, pop.second
    held = a0 < n_p
    entered = held & (((a1 != a0) & (a1 != b0) & (a1 < n_p)) | ((b1 != a0) & (b1 != b0) & (b1 < n_p)))
    fresh = ~held & (b1 < n_p)
    return int(entered.sum()), int(fresh.sum())


def test_reference_starts_from_the_engines_population_and_network():
    fast = CloudMarket("baseline", rng=5, enterprises=600)
    ref = ReferenceMarket.from_market(fast)
    assert len(ref.agents_by_type[EnterpriseAgent]) == 600
    _assert_same_enterprises(fast, ref)
    for i in (0, 17, 599):
        enterprise = ref.enterprise_list[i]
        assert sorted(other.unique_id for other in enterprise.neighbours) == sorted(
            ref.enterprise_list[j].unique_id for j in fast.network.neighbours(i)
        )
        assert enterprise.size == pytest.approx(float(fast.enterprises.size[i]))
    np.testing.assert_allclose(
        [p.capacity_in_service(1) for p in ref.providers_list],
        [p.capacity_in_service(1) for p in fast.providers_list],
        rtol=1e-12,
    )


@pytest.mark.parametrize(
    ("scenario", "enterprises", "quarters", "settings"),
    [
        # Wallets (the baseline's 85%), annual contracts, capacity rationing, Bass adoption, network.
        ("baseline", 2000, 24, {}),
        ("baseline", 1200, 12, {"choice.multi_homing_share": 0.0}),  # single-homing
        ("baseline", 1200, 12, ONE_QUARTER),
        ("baseline", 1200, 12, {"choice.multi_homing_share": 0.0, **ONE_QUARTER}),
        # Cheap switching: newcomers enter wallets often while AI adopters take their first two providers.
        ("baseline", 1500, 12, {"enterprise.switching_cost": 0.5, "adoption.innovation": 0.05}),
        ("baseline", 800, 8, {"network.kind": "clustered_networkx", "choice.network_weight": 1.0}),
        ("calvano_duopoly", 400, 6, {}),  # best-response pricing reads the market's demand curves
        ("calvano_duopoly", 400, 6, {"choice.multi_homing_share": 0.5}),  # ... the wallet curves
    ],
)
def test_shared_randomness_gives_identical_runs(scenario, enterprises, quarters, settings):
    fast = CloudMarket(scenario, rng=2024, enterprises=enterprises, **settings)
    ref = ReferenceMarket(scenario, rng=2024, enterprises=enterprises, **settings)
    _assert_same_enterprises(fast, ref)
    entered = fresh = 0
    contract_gap = 0.0
    for _ in range(quarters):
        before = (
            (fast.enterprises.provider.copy(), fast.enterprises.second.copy()) if fast.enterprises.wallets else None
        )
        fast.step()
        ref.step()
        _assert_same_quarter(fast, ref)
        _assert_same_enterprises(fast, ref)
        if before is not None:
            moves = _wallet_moves(before, fast)
            entered, fresh = entered + moves[0], fresh + moves[1]
        books = fast.records[-1]["books"]
        contract_gap = max(
            contract_gap,
            max(np.abs(b.realised_price - p.prices).max() for b, p in zip(books, fast.providers_list, strict=True)),
        )
    assert fast.ai_adoption == ref.ai_adoption
    # The cases test what they say: wallets change hands and first-time buyers take a second provider,
    # and with contracts longer than a quarter some customers pay a price other than this quarter's.
    if fast.enterprises.wallets:  # (with two providers a wallet holds both: no newcomer can enter)
        assert (entered > 0 or len(fast.providers_list) == 2) and fresh > 0, (entered, fresh)
    if settings.get("enterprise.switching_cost") == 0.5:
        assert entered >= 50 and fresh >= 50, (entered, fresh)
    if scenario == "baseline" and "products.cloud.contract_quarters" not in settings:
        assert contract_gap > 0.0
    elif "products.cloud.contract_quarters" in settings:
        assert contract_gap < 1e-9 * max(float(p.prices.max()) for p in fast.providers_list)


def test_contract_renewals_stay_right_in_long_runs():
    """Regression: the engine once computed quarter + contract_phase in int8, which wrapped from
    quarter 65 on and broke renewals of contracts of 3, 5, 6, ... quarters."""
    settings = {"enterprises": 400, "quarters": 70, "products.cloud.contract_quarters": 3}
    fast = CloudMarket("baseline", rng=3, **settings)
    ref = ReferenceMarket("baseline", rng=3, **settings)
    for _ in range(70):
        fast.step()
        ref.step()
        _assert_same_quarter(fast, ref)


def _summaries(records: list[dict], provider_names: list[str], product_names: list[str]) -> dict[str, float]:
    """Shares at the end (customers, volume, revenue), the adoption curve, churn both ways and
    multi-homing, as named numbers."""
    out: dict[str, float] = {}
    last = records[-1]
    customers = last["customers"].sum(axis=2)  # (P, K), all regions
    volume = last["demand_volume"].sum(axis=2)
    revenue = np.array([book.revenue for book in last["books"]]).sum(axis=2)
    for k, product in enumerate(product_names):
        for j, provider in enumerate(provider_names):
            out[f"customer share {provider} {product}"] = customers[j, k] / customers[:, k].sum()
            out[f"volume share {provider} {product}"] = volume[j, k] / volume[:, k].sum()
            out[f"revenue share {provider} {product}"] = revenue[j, k] / revenue[:, k].sum()
    adoption = np.array([rec["ai_adoption"] for rec in records])  # (Q, R)
    for q in range(0, len(records), 3):
        for r in range(adoption.shape[1]):
            out[f"AI adoption region {r} quarter {q + 1}"] = adoption[q, r]
    churn, moved = [], []
    for before, now in zip(records[:-1], records[1:], strict=True):
        churn.append(now["churned"].sum(axis=(0, 2)) / before["customers"].sum(axis=(0, 2)))  # (K,)
        moved.append(now["volume_moved"].sum(axis=(0, 2)) / before["demand_volume"].sum(axis=(0, 2)))
    buyers, both = (count.sum(axis=1) for count in last["multi_homing"])  # (K,) each
    for k, product in enumerate(product_names):
        out[f"mean churn {product}"] = float(np.mean([c[k] for c in churn]))
        out[f"mean volume moved {product}"] = float(np.mean([m[k] for m in moved]))
        out[f"multi-homing {product}"] = both[k] / buyers[k]
    return out


def _reseed(model: CloudMarket | ReferenceMarket, seed: list[int]) -> None:
    """Give a freshly built model its own random streams for the quarters (the start is kept)."""
    model.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
    model.random.seed(int(np.random.default_rng(seed).integers(2**31)))


ENTERPRISES, QUARTERS, START_SEED = 2500, 24, 11
BASELINE = load_scenario("baseline")
# Wallets on and off under the baseline's annual contracts. (Quarterly contracts, with and without
# wallets, are held by the identical-randomness cases above; their Monte Carlo runs took two of this
# file's three minutes and the suite has a 15-minute budget.)
SETTINGS = {
    "wallets, annual contracts": {},
    "single-homing, annual contracts": {"choice.multi_homing_share": 0.0},
}


def _run(model: CloudMarket | ReferenceMarket, seed: int) -> dict[str, float]:
    _reseed(model, [START_SEED, seed])
    for _ in range(QUARTERS):
        model.step()
    return _summaries(model.records, model.provider_names, model.product_names)


def _runs(cls: type, settings: dict, seeds: range) -> list[dict[str, float]]:
    """Runs of ``cls`` from one starting market (START_SEED), each with its own random stream."""
    return [_run(cls("baseline", rng=START_SEED, enterprises=ENTERPRISES, **settings), s) for s in seeds]


def _z_scores(engine: list[dict[str, float]], other: list[dict[str, float]]) -> dict[str, float]:
    """(mean of other - mean of engine) / standard error, per summary; SE from the pooled spread."""
    scores = {}
    for name in engine[0]:
        e = np.array([run[name] for run in engine])
        o = np.array([run[name] for run in other])
        pooled = np.sqrt(((len(e) - 1) * e.var(ddof=1) + (len(o) - 1) * o.var(ddof=1)) / (len(e) + len(o) - 2))
        se = pooled * np.sqrt(1.0 / len(other) + 1.0 / len(engine))
        difference = o.mean() - e.mean()
        scores[name] = difference / se if se > 0 else (0.0 if abs(difference) < 1e-12 else np.inf)
    return scores


_ENGINE_RUNS: dict[str, list[dict[str, float]]] = {}


def _engine_runs(name: str) -> list[dict[str, float]]:
    """ENGINE_RUNS runs of the engine under SETTINGS[name] (computed once per test session)."""
    if name not in _ENGINE_RUNS:
        _ENGINE_RUNS[name] = _runs(CloudMarket, SETTINGS[name], range(ENGINE_RUNS))
    return _ENGINE_RUNS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SETTINGS))
def test_reference_and_engine_agree_within_monte_carlo_error(name):
    engine = _engine_runs(name)
    reference = _runs(ReferenceMarket, SETTINGS[name], range(1000, 1000 + REFERENCE_RUNS))
    scores = _z_scores(engine, reference)
    failures = [f"{summary}: {z:+.1f} SE" for summary, z in scores.items() if abs(z) > TOLERANCE_SE]
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize(
    "change",
    [  # relative to the baseline, so that they follow its calibration
        {"adoption.imitation": 0.87 * BASELINE.adoption.imitation},
        {"choice.network_weight": 0.6 * BASELINE.choice.network_weight},
        {"enterprise.switching_cost": 0.9 * BASELINE.enterprise.switching_cost},
        {"choice.multi_homing_share": BASELINE.choice.multi_homing_share - 0.05},
    ],
)
def test_the_comparison_detects_a_slightly_different_model(change):
    """The same test flags an engine whose rules differ a little (a check that it has teeth)."""
    changed = _runs(CloudMarket, change, range(1000, 1000 + REFERENCE_RUNS))
    assert max(abs(z) for z in _z_scores(_engine_runs("wallets, annual contracts"), changed).values()) > TOLERANCE_SE


@pytest.mark.parametrize("wallets", [0.93, 0.0])
def test_the_reference_demand_curves_are_the_engines(wallets):
    """The strategies' demand model built agent by agent (renewing buyers and the first-time AI
    buyers expected this quarter) equals the engine's, after identical quarters."""
    overrides = {
        "enterprises": 1500,
        "choice.multi_homing_share": wallets,
        "providers.Tencent.strategy": {"kind": "best_response"},
    }
    fast = CloudMarket("baseline", rng=3, overrides=overrides)
    ref = ReferenceMarket.from_market(CloudMarket("baseline", rng=3, overrides=overrides))
    for _ in range(3):
        fast.step()
        ref.step()
    fast._curves.clear()
    ref._curves.clear()
    rng = np.random.default_rng(0)
    for k, product in enumerate(fast.product_names):
        for r in range(len(fast.region_names)):
            a, b = fast.demand_curve(k, r), ref.demand_curve(k, r)
            assert (a.newcomers is not None) == (product == "ai")  # AI adoption is still going on
            for _ in range(3):
                prices = fast.prices[:, k, r] * rng.uniform(0.5, 1.5, size=len(fast.provider_names))
                np.testing.assert_allclose(b.quantities(prices), a.quantities(prices), rtol=1e-5)
