"""The cases whose tables must stay bit-identical across refactors (tests/test_golden.py).

Each case is (name, scenario, seed, quarters, overrides). ``python -m tests.golden_cases DIR``
writes their results tables as Parquet into DIR (run it on the code the tables are taken from).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CASES = [
    ("baseline", "baseline", 3, 8, {"enterprises": 3000}),
    (
        "baseline_rivals",
        "baseline",
        5,
        6,
        {
            "enterprises": 2500,
            "providers.Alibaba.strategy": {"kind": "price_cut", "cut": 0.9, "at_quarter": 2},
            "providers.Tencent.strategy": {"kind": "best_response"},
            # GPU supply moved from the strategy (platform_embedded's 5%) to the provider: a strategy
            # that replaces Tencent's no longer drops the limit, so the case drops it itself.
            "providers.Tencent.gpu_supply": {},
        },
    ),
    ("complete_network", "baseline", 7, 5, {"enterprises": 1500, "network.kind": "complete"}),
    ("calvano", "calvano_duopoly", 1, 10, {}),
]


def simd_signature() -> dict:
    """numpy's version and the SIMD targets it dispatches to on this CPU: what decides the last bits."""
    import numpy as np
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return {"numpy": np.__version__, "dispatch": [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]}


def case_results(scenario: str, seed: int, quarters: int, overrides: dict):
    from cloudwar import CloudMarket

    model = CloudMarket(scenario, rng=seed, overrides=dict(overrides))
    return model.run(quarters)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, scenario, seed, quarters, overrides in CASES:
        table = case_results(scenario, seed, quarters, overrides).drop(columns="calendar")  # checked apart
        table.to_parquet(out / f"{name}.parquet", index=False)
        print("wrote", out / f"{name}.parquet")
    (out / "platform.json").write_text(json.dumps(simd_signature(), indent=2) + "\n")
    print("wrote", out / "platform.json")
