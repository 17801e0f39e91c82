"""Same seed, same tables: the results of fixed cases equal, bit for bit, those stored in tests/data/golden.

The stored tables were written by ``python -m tests.golden_cases tests/data/golden`` on the code
before the refactor that this test guards. A change that is meant to move the model's numbers
re-writes them in the same commit, and says so. Columns added to the table since (``calendar``)
are not stored: the stored columns must match bit for bit, and each added column must be what
it is defined as (``calendar`` = :func:`cloudwar.quarters.labels` of the scenario's start and the step).

Bit for bit holds on CPUs where numpy dispatches to the same SIMD kernels as on the machine that
wrote the tables (``platform.json``). numpy's AVX-512 and AVX2 kernels of exp, log and power differ
in the last bits, and the best-response search amplifies that: the tables of an AMD EPYC (AVX2)
and an Intel Xeon (AVX-512) differ by up to 4e-6 relative (measured, Tencent's best-response
price). On another dispatch the comparison is to 1e-4 relative, and the test says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cloudwar import quarters
from cloudwar.scenario import load_scenario
from tests.golden_cases import CASES, case_results, simd_signature

GOLDEN = Path(__file__).parent / "data" / "golden"
SAME_KERNELS = json.loads((GOLDEN / "platform.json").read_text()) == simd_signature()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_same_seed_same_table_as_stored(case):
    name, scenario, seed, steps, overrides = case
    expected = pd.read_parquet(GOLDEN / f"{name}.parquet")
    got = case_results(scenario, seed, steps, overrides).reset_index(drop=True)
    assert [c for c in got.columns if c != "calendar"] == list(expected.columns)
    assert len(got) == len(expected)
    stored = got[list(expected.columns)]
    if SAME_KERNELS:
        pd.testing.assert_frame_equal(stored, expected, check_exact=True, check_dtype=False, check_categorical=False)
    else:  # another CPU's SIMD kernels (module docstring)
        pd.testing.assert_frame_equal(stored, expected, rtol=1e-4, check_dtype=False, check_categorical=False)
    start = load_scenario(scenario).start
    assert got["calendar"].tolist() == quarters.labels(start, got["quarter"])


def test_the_tables_record_the_kernels_that_wrote_them():
    recorded = json.loads((GOLDEN / "platform.json").read_text())
    assert set(recorded) == {"numpy", "dispatch"} and recorded["dispatch"], recorded
    assert all(isinstance(t, str) and t for t in recorded["dispatch"])
