"""Same seed, same tables: the results of fixed cases equal, bit for bit, those stored in tests/data/golden.

The stored tables were written by ``python -m tests.golden_cases tests/data/golden`` on the code
before the refactor that this test guards. A change that is meant to move the model's numbers
re-writes them in the same commit, and says so.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.golden_cases import CASES, case_results

GOLDEN = Path(__file__).parent / "data" / "golden"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_same_seed_same_table_as_stored(case):
    name, scenario, seed, quarters, overrides = case
    expected = pd.read_parquet(GOLDEN / f"{name}.parquet")
    got = case_results(scenario, seed, quarters, overrides).reset_index(drop=True)
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_dtype=False, check_categorical=False)
