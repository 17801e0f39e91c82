"""Same seed, same tables: the results of fixed cases equal, bit for bit, those stored in tests/data/golden.

The stored tables were written by ``python -m tests.golden_cases tests/data/golden`` on the code
before the refactor that this test guards. A change that is meant to move the model's numbers
re-writes them in the same commit, and says so. Columns added to the table since (``calendar``)
are not stored: the stored columns must match bit for bit, and each added column must be what
it is defined as (``calendar`` = :func:`cloudwar.quarters.labels` of the scenario's start and the step).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cloudwar import quarters
from cloudwar.scenario import load_scenario
from tests.golden_cases import CASES, case_results

GOLDEN = Path(__file__).parent / "data" / "golden"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_same_seed_same_table_as_stored(case):
    name, scenario, seed, steps, overrides = case
    expected = pd.read_parquet(GOLDEN / f"{name}.parquet")
    got = case_results(scenario, seed, steps, overrides).reset_index(drop=True)
    assert [c for c in got.columns if c != "calendar"] == list(expected.columns)
    assert len(got) == len(expected)
    stored = got[list(expected.columns)]
    pd.testing.assert_frame_equal(stored, expected, check_exact=True, check_dtype=False, check_categorical=False)
    start = load_scenario(scenario).start
    assert got["calendar"].tolist() == quarters.labels(start, got["quarter"])
