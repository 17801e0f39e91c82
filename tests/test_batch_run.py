"""``mesa.batch_run`` drives CloudMarket like any Mesa model, dotted scenario keys included."""

from __future__ import annotations

import mesa
import pandas as pd
import pytest

from cloudwar import CloudMarket

PARAMETERS = {
    "scenario": "baseline",
    "enterprises": 400,
    "quarters": 3,
    "choice.network_weight": [0.2, 0.8],
}


def batch(number_processes: int = 1) -> pd.DataFrame:
    rows = mesa.batch_run(
        CloudMarket,
        PARAMETERS,
        rng=[1, 2],
        max_steps=100,  # the model stops itself after `quarters`
        number_processes=number_processes,
        data_collection_period=1,
        display_progress=False,
    )
    return pd.DataFrame(rows)


def test_batch_run_varies_dotted_scenario_keys():
    df = batch()
    providers = CloudMarket("baseline", rng=0, overrides={"enterprises": 400}).provider_names
    # 2 values x 2 seeds, 3 quarters, one row per provider (the datacollector's agent-type reporters).
    assert len(df) == 2 * 2 * 3 * len(providers)
    assert sorted(df["choice.network_weight"].unique()) == [0.2, 0.8]
    assert sorted(df["rng"].unique()) == [1, 2]
    assert sorted(df["quarter"].unique()) == [1, 2, 3]
    for column in ("hhi", "total_revenue", "ai_adoption", "name", "revenue_share", "npv"):
        assert column in df

    # Each row is what the model gives when built directly with the same settings.
    model = CloudMarket("baseline", rng=2, enterprises=400, quarters=3, **{"choice.network_weight": 0.8})
    while model.running:
        model.step()
    direct = model.datacollector.get_model_vars_dataframe()
    got = df[(df["rng"] == 2) & (df["choice.network_weight"] == 0.8)].drop_duplicates("quarter")
    assert got["hhi"].tolist() == direct["hhi"].tolist()
    assert got["total_revenue"].tolist() == direct["total_revenue"].tolist()


def test_batch_run_rejects_a_bad_key_with_the_model_error():
    from cloudwar import ScenarioError

    with pytest.raises(ScenarioError, match="unknown key 'choice.nope'"):
        mesa.batch_run(CloudMarket, {"choice.nope": [1]}, rng=[0], number_processes=1, display_progress=False)


@pytest.mark.slow
def test_batch_run_in_parallel_gives_the_same_rows():
    serial = batch(1)
    parallel = batch(2)
    key = ["rng", "choice.network_weight", "Step", "AgentID"]
    serial = serial.sort_values(key).drop(columns="RunId").reset_index(drop=True)
    parallel = parallel.sort_values(key).drop(columns="RunId").reset_index(drop=True)
    pd.testing.assert_frame_equal(serial, parallel)
