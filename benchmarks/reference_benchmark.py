"""The fast engine side by side with the plain-Mesa reference and a bare-numpy floor.

Prints a markdown table: enterprise-quarters per second and memory per enterprise of

* the **reference** (:mod:`cloudwar.model.reference`: one Mesa agent per enterprise), up to 100,000,
* the **fast engine** (:class:`cloudwar.model.market.CloudMarket`), and
* the **floor**: the same quarter's arithmetic as bare numpy on preallocated arrays, nothing else
  (no model, no agents, no provider side, no bookkeeping): Bass adoption hazards and draws, the
  utilities of the enterprises due, logit, inverse-CDF sampling, the wallets (a newcomer
  replaces the weaker member, first-time wallet buyers draw a second provider, the split by
  logit weights), neighbour-count updates, the demand tally over both slots and signing cohorts
  (the realised contract prices),

for 10,000, 100,000 and 1,000,000 enterprises of the baseline scenario (average 20 links), and
checks the bars of issue 6: at 100,000 enterprises the engine is at least 200 times the
reference; at 1,000,000 within 3 times the floor; at most 300 bytes per enterprise beyond the
interpreter and imports.

    python benchmarks/reference_benchmark.py
    python benchmarks/reference_benchmark.py --sizes 10000 100000 --reference-quarters 4

Each measurement runs in a fresh single-threaded process (see engine_benchmark.py for how memory
is measured). The reference is slow, so it runs ``--reference-quarters`` quarters (default 10);
the ratio engine / reference compares the engine over the same first quarters. The engine and
the floor run ``--quarters`` (default 40) from the same starting market (same seed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from engine_benchmark import (
    bytes_per_enterprise,
    engine_table,
    fmt,
    machine,
    markdown_table,
    measure_model,
    measure_repeated,
    throughput,
    worker_fast,
    worker_main,
)

ENGINE_SCRIPT = Path(__file__).with_name("engine_benchmark.py")
SIZES = (10_000, 100_000, 1_000_000)
REFERENCE_MAX = 100_000
BAR_RATIO_ENTERPRISES, BAR_RATIO = 100_000, 200.0
BAR_FLOOR_ENTERPRISES, BAR_FLOOR = 1_000_000, 3.0
BAR_BYTES = 300.0


def worker_reference(size: int, quarters: int, scenario: str, seed: int) -> dict[str, Any]:
    from cloudwar.model.reference import ReferenceMarket

    result = measure_model(lambda: ReferenceMarket(scenario, rng=seed, enterprises=size), quarters)
    del result["model"]
    return result


# --- the floor ---------------------------------------------------------------------------------
class BareQuarter:
    """The quarter's enterprise arithmetic as bare numpy, on arrays taken from a starting CloudMarket.

    Prices and service levels stay at their starting values (the provider side is not part of
    the floor, but the tally still prices every signing cohort); everything that scales with the
    number of enterprises is here, written as tight as plain numpy allows: float32 utilities with
    providers along the first axis, work buffers allocated once, neighbour counts updated in place
    with ``ufunc.at`` on matching dtypes. Not here: rationed customers' early renewals and the
    churn counts (bookkeeping).
    """

    def __init__(self, market: Any):
        s = market.config
        pop = market.population
        self.n, self.n_p = pop.n, len(market.providers_list)
        states = self.n_p + 1
        self.rng = np.random.default_rng(market.rng.integers(2**63))
        self.region = pop.region.astype(np.intp)
        self.size = pop.size
        self.quality_sensitivity = pop.quality_sensitivity.astype(np.float32)
        self.price_sensitivity = pop.price_sensitivity.astype(np.float32)
        self.switching_cost = pop.switching_cost.astype(np.float32)
        self.contract_phase = pop.contract_phase.astype(np.int16)
        self.provider = pop.provider.copy()
        self.wallets = pop.wallets
        if self.wallets:  # (K, n) second provider (P = none) and the primary's share; (n,) holds two
            self.second, self.share, self.two = pop.second.copy(), pop.share.copy(), pop.two_slots.copy()
        self.signed = pop.signed.copy()  # (K, n) quarter of signing
        self.adopted = pop.adopted.copy()
        self.adopted_quarter = pop.adopted_quarter.copy()
        self.indptr, self.indices = market.network.indptr, market.network.indices
        degree = np.diff(self.indptr)
        self.inv_degree = np.where(degree > 0, 1.0 / np.maximum(degree, 1), 0.0).astype(np.float32)
        owner = np.repeat(np.arange(self.n), degree)
        adopted_neighbours = np.bincount(owner, weights=self.adopted[self.indices], minlength=self.n)
        self.adopted_neighbours = adopted_neighbours.astype(np.int16)
        # Per product, (P + 1, n): how many of each enterprise's neighbours buy from each provider.
        self.neighbour_counts = [
            np.bincount(self.provider[k, self.indices].astype(np.intp) * self.n + owner, minlength=states * self.n)
            .astype(np.int16)
            .reshape(states, self.n)
            for k in range(len(s.products))
        ]
        del owner
        self.adoption = s.adoption
        self.choice = s.choice
        self.products = [s.products[name] for name in s.product_names]
        self.ai = s.product_names.index("ai") if "ai" in s.product_names else None
        self.cloud = s.product_names.index("cloud") if "cloud" in s.product_names else None
        self.order = sorted(range(len(self.products)), key=lambda k: k != self.ai)
        # Per product, (P, R) tables: quality, price / reference price, constant utility terms.
        providers = market.providers_list
        prices = np.array([p.prices for p in providers])
        quality = np.array([p.quality for p in providers])
        ecosystem = np.array([p.ecosystem for p in providers])
        with np.errstate(divide="ignore"):
            constant = (
                np.log(np.array([p.presence for p in providers])) + s.choice.ecosystem_weight * ecosystem[:, None]
            )
        self.quality = [quality[:, k, :].astype(np.float32) for k in range(len(self.products))]
        self.price = [(prices[:, k, :] / p.reference_price).astype(np.float32) for k, p in enumerate(self.products)]
        self.price_log = [prices]  # list prices by quarter of signing (constant here, priced all the same)
        self.constant = [constant.astype(np.float32) for _ in self.products]
        self.volume_scale = market.enterprises.volume_scale
        self.utilities = np.empty((self.n_p, self.n), dtype=np.float32)  # work buffers, sliced to those due
        self.terms = np.empty((self.n_p, self.n), dtype=np.float32)
        self.kept = np.empty((self.n_p, self.n), dtype=np.float32) if self.wallets else None  # pre-draw utilities
        self.quarter = 0

    @property
    def nbytes(self) -> int:
        arrays = [v for v in vars(self).values() if isinstance(v, np.ndarray)] + self.neighbour_counts
        return sum(a.nbytes for a in arrays)

    def _neighbours_of(self, who: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All neighbours of ``who`` (concatenated) and how many each has."""
        starts = self.indptr[who]
        lengths = self.indptr[who + 1] - starts
        first = np.cumsum(lengths) - lengths
        positions = np.repeat(starts - first, lengths) + np.arange(int(lengths.sum()))
        return self.indices[positions].astype(np.intp), lengths

    def step(self) -> None:
        self.quarter += 1
        self.price_log.append(self.price_log[0])
        a = self.adoption
        for _ in range(a.substeps):
            candidates = np.flatnonzero(~self.adopted)
            if len(candidates) == 0:
                break
            hazard = self.adopted_neighbours[candidates] * self.inv_degree[candidates]
            hazard = (a.innovation + a.imitation * hazard) / a.substeps
            new = candidates[self.rng.random(len(candidates)) < hazard]
            self.adopted[new] = True
            self.adopted_quarter[new] = self.quarter
            neighbours, _ = self._neighbours_of(new)
            np.add.at(self.adopted_neighbours, neighbours, np.ones(len(neighbours), dtype=np.int16))
        for k in self.order:
            self._choose(k)
            self._tally(k)

    def _choose(self, k: int) -> None:
        product, n_p = self.products[k], self.n_p
        due = (self.contract_phase + self.quarter) % product.contract_quarters == 0
        if k == self.ai:
            due = (due | (self.adopted_quarter == self.quarter)) & self.adopted
        idx = np.flatnonzero(due)
        m = len(idx)
        if m == 0:
            return
        region = self.region[idx]
        v, t = self.utilities[:, :m], self.terms[:, :m]  # (P, m)
        np.take(self.quality[k], region, axis=1, out=v)
        v *= self.quality_sensitivity[idx]
        np.take(self.price[k], region, axis=1, out=t)
        t *= self.price_sensitivity[idx]
        v -= t
        np.take(self.constant[k], region, axis=1, out=t)
        v += t
        counts = self.neighbour_counts[k]
        np.multiply(counts[:n_p, idx], self.choice.network_weight * self.inv_degree[idx], out=t)
        v += t
        rows = np.arange(m)
        current = self.provider[k, idx]
        stays = current < n_p
        cost = self.switching_cost[idx]
        v[current[stays], rows[stays]] += cost[stays]
        if self.wallets:
            second = self.second[k, idx]
            has = second < n_p
            v[second[has], rows[has]] += cost[has]
        if k == self.cloud and self.ai is not None:
            ai_provider = self.provider[self.ai, idx]
            has = ai_provider < n_p
            v[ai_provider[has], rows[has]] += np.float32(self.choice.ai_pull)
        # Logit with the outside option, then inverse CDF on the unnormalised running sum.
        v *= np.float32(1.0 / product.logit_scale)
        if self.wallets:
            kept = self.kept[:, :m]
            np.copyto(kept, v)  # utilities / mu, for the wallets
        outside = product.outside_quality / product.logit_scale
        shift = np.maximum(v.max(axis=0), np.float32(outside))
        v -= shift
        np.exp(v, out=v)
        for j in range(1, n_p):  # row by row: np.cumsum(v, axis=0, out=v) on this view is ~9x slower
            v[j] += v[j - 1]
        total = v[-1] + np.exp(np.float32(outside) - shift)
        threshold = (self.rng.random(m) * total).astype(np.float32)
        choice = (threshold >= v).sum(axis=0)
        self.signed[k, idx] = self.quarter
        if self.wallets:
            choice = self._wallets(k, idx, choice, kept, cost / np.float32(product.logit_scale))
        changed = choice != current
        who, old, new = idx[changed], current[changed].astype(np.intp), choice[changed]
        self.provider[k, who] = new
        neighbours, lengths = self._neighbours_of(who)
        flat = counts.reshape(-1)
        ones = np.ones(len(neighbours), dtype=np.int16)
        np.subtract.at(flat, np.repeat(old, lengths) * self.n + neighbours, ones)
        np.add.at(flat, np.repeat(new, lengths) * self.n + neighbours, ones)

    def _wallets(self, k: int, idx: np.ndarray, c: np.ndarray, kept: np.ndarray, cost: np.ndarray) -> np.ndarray:
        """The wallet rule on the drawn choices ``c``; sets seconds and shares, returns the new primaries.

        ``kept``: (P, m) utilities / mu at the draw (members' switching costs in them), ``cost``:
        (m,) switching cost / mu.
        """
        n_p, m = self.n_p, len(idx)
        rows = np.arange(m)
        a, b, two = self.provider[k, idx].astype(np.intp), self.second[k, idx].astype(np.intp), self.two[idx]
        value = np.vstack([kept, np.full((1, m), -np.inf, dtype=np.float32)])  # row P: none
        out, new = c == n_p, (c != a) & (c != b)
        new &= ~out
        fresh = new & (a == n_p)
        weaker_is_a = ~two | (value[a, rows] < value[b, rows])
        x = np.where(out | fresh | (new & weaker_is_a), c, a)  # a newcomer replaces the weaker member
        y = np.where(out, n_p, np.where(new & ~weaker_is_a & ~fresh, c, b))
        pick = np.flatnonzero(fresh & two)  # first-time wallet buyers draw a second provider
        w = np.exp(kept[:, pick] - kept[:, pick].max(axis=0))
        w[c[pick], np.arange(len(pick))] = 0.0
        np.cumsum(w, axis=0, out=w)
        y[pick] = (self.rng.random(len(pick)) * w[-1] >= w).sum(axis=0)
        # Split by logit weights without switching costs (a kept member had its cost added).
        vx = value[x, rows] - np.where((x == a) | (x == b), cost, 0.0)
        vy = value[y, rows] - np.where((y == a) | (y == b), cost, 0.0)
        with np.errstate(invalid="ignore", over="ignore"):  # nobody in either slot: share 1
            f = np.where(y < n_p, 1.0 / (1.0 + np.exp(np.minimum(vy - vx, 80.0))), 1.0).astype(np.float32)
        swap = f < 0.5
        x, y, f = np.where(swap, y, x), np.where(swap, x, y), np.where(swap, 1.0 - f, f)
        self.second[k, idx], self.share[k, idx] = np.where(x < n_p, y, n_p), f
        return x

    def _tally(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Volume demanded per (provider, region), the input of rationing, and its realised price
        (list prices of each customer's signing quarter, volume-weighted)."""
        n_r = self.volume_scale.shape[1]
        volume = self.size * self.volume_scale[k, self.region]
        if k == self.ai:
            ramp = np.minimum(
                (1.0 + self.adoption.usage_growth) ** (np.arange(self.quarter + 1) / 4.0), self.adoption.usage_cap
            )
            volume *= np.where(self.adopted, ramp[np.clip(self.quarter - self.adopted_quarter, 0, self.quarter)], 0.0)
        cohorts = len(self.price_log)
        size = (self.n_p + 1) * n_r * cohorts
        share = self.share[k] if self.wallets else None
        slots = [(self.provider[k], share)] + ([(self.second[k], 1.0 - share)] if self.wallets else [])
        by_cohort = np.zeros(size)
        for providers, share in slots:
            flat = (providers.astype(np.intp) * n_r + self.region) * cohorts + self.signed[k]
            by_cohort += np.bincount(flat, weights=volume if share is None else volume * share, minlength=size)
        by_cohort = by_cohort.reshape(self.n_p + 1, n_r, cohorts)[: self.n_p]
        total = by_cohort.sum(axis=2)
        paid = (by_cohort * np.stack([q[:, k, :] for q in self.price_log], axis=2)).sum(axis=2)
        return total, paid / np.maximum(total, 1e-300)


def worker_floor(size: int, quarters: int, scenario: str, seed: int) -> dict[str, Any]:
    from cloudwar.model.market import CloudMarket

    result = measure_model(lambda: BareQuarter(CloudMarket(scenario, rng=seed, enterprises=size)), quarters)
    # The starting market is built in this process, so the process's memory says nothing about
    # the floor: the floor's memory is the arrays it holds.
    floor = result.pop("model")
    for key in ("build_peak_bytes", "step_peak_bytes", "peak_bytes", "held_bytes"):
        result[key] = result["baseline_bytes"] + floor.nbytes
    return result


WORKERS = {"fast": worker_fast, "reference": worker_reference, "floor": worker_floor}


# --- the parent process ------------------------------------------------------------------------
def side_by_side(
    fast: dict[int, dict], reference: dict[int, dict], floor: dict[int, dict], reference_quarters: int
) -> str:
    """Speed over the reference's quarters, speed over all quarters against the floor, then memory."""
    rows = []
    for n in fast:
        ref = reference.get(n)
        ref_speed = throughput(ref) if ref else None
        fast_same = throughput(fast[n], reference_quarters)
        rows.append(
            [
                f"{n:,}",
                fmt(ref_speed),
                fmt(fast_same),
                fmt(fast_same / ref_speed if ref else None),
                fmt(throughput(fast[n])),
                fmt(throughput(floor[n])),
                fmt(throughput(floor[n]) / throughput(fast[n]), 2),
                fmt(bytes_per_enterprise(ref) if ref else None),
                fmt(bytes_per_enterprise(fast[n], "build_peak_bytes")),
                fmt(bytes_per_enterprise(fast[n], "step_peak_bytes")),
                fmt(bytes_per_enterprise(fast[n], "held_bytes")),
                fmt(bytes_per_enterprise(floor[n])),
            ]
        )
    quarters = len(next(iter(fast.values()))["quarter_seconds"])
    first, every = f"q1-{reference_quarters}", f"q1-{quarters}"
    header = [
        "enterprises",
        f"reference eq/s ({first})",
        f"engine eq/s ({first})",
        "engine / reference",
        f"engine eq/s ({every})",
        f"numpy floor eq/s ({every})",
        "floor / engine",
        "reference B/ent, peak",
        "engine B/ent, build peak",
        "engine B/ent, stepping peak",
        "engine B/ent, held",
        "floor B/ent, arrays",
    ]
    return markdown_table(header, rows)


def bars(fast: dict[int, dict], reference: dict[int, dict], floor: dict[int, dict], reference_quarters: int) -> str:
    lines = []
    n = BAR_RATIO_ENTERPRISES
    if n in fast and n in reference:
        ratio = throughput(fast[n], reference_quarters) / throughput(reference[n])
        lines.append(
            f"- engine / reference at {n:,}: {ratio:,.0f}x (bar >= {BAR_RATIO:.0f}x): "
            f"{'met' if ratio >= BAR_RATIO else 'NOT MET'}"
        )
    n = BAR_FLOOR_ENTERPRISES
    if n in fast:
        gap = throughput(floor[n]) / throughput(fast[n])
        lines.append(
            f"- floor / engine at {n:,}: {gap:.2f}x (bar <= {BAR_FLOOR:.0f}x): {'met' if gap <= BAR_FLOOR else 'NOT MET'}"
        )
        labels = {
            "build_peak_bytes": "at the build peak",
            "step_peak_bytes": "at the stepping peak",
            "held_bytes": "held after the run",
        }
        for key, label in labels.items():
            b = bytes_per_enterprise(fast[n], key)
            if b is None:
                continue
            lines.append(
                f"- engine memory per enterprise at {n:,}, {label}: {b:,.0f} B (bar <= {BAR_BYTES:.0f} B): "
                f"{'met' if b <= BAR_BYTES else 'NOT MET'}"
            )
    return "\n".join(lines) or "(bars not checked at these sizes)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="enterprise counts")
    parser.add_argument("--quarters", type=int, default=40, help="quarters for the engine and the floor")
    parser.add_argument("--reference-quarters", type=int, default=10, help="quarters for the reference")
    parser.add_argument("--reference-max", type=int, default=REFERENCE_MAX, help="largest size the reference runs")
    parser.add_argument("--scenario", default="baseline")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per size for the engine and the floor")
    parser.add_argument("--reference-repeats", type=int, default=1, help="fresh processes per size for the reference")
    parser.add_argument("--json", type=Path, help="also write the raw measurements here")
    args = parser.parse_args(argv)
    about = machine()
    fast, reference, floor = {}, {}, {}
    common = (args.scenario, args.seed)
    for n in args.sizes:
        if n <= args.reference_max:
            reference[n] = measure_repeated(
                __file__, "reference", n, args.reference_quarters, *common, args.reference_repeats
            )
        fast[n] = measure_repeated(ENGINE_SCRIPT, "fast", n, args.quarters, *common, args.repeats)
        floor[n] = measure_repeated(__file__, "floor", n, args.quarters, *common, args.repeats)
    print(
        f"Scenario {args.scenario}; engine and floor {args.quarters} quarters, reference {args.reference_quarters} "
        f"(engine / reference over the same first {args.reference_quarters}); eq/s = enterprise-quarters per CPU second "
        f"of stepping, per-quarter medians over {args.repeats} fresh processes per size "
        f"({args.reference_repeats} for the reference); B/ent = bytes per enterprise beyond the interpreter and "
        f"imports (the highest of the processes). {about}.\n"
    )
    print(side_by_side(fast, reference, floor, args.reference_quarters))
    print()
    print(bars(fast, reference, floor, args.reference_quarters))
    print("\nBuild and stepping of the engine:\n")
    print(engine_table(list(fast.values())))
    if args.json:
        args.json.write_text(json.dumps({"fast": fast, "reference": reference, "floor": floor}, indent=1))


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_main(WORKERS)
    else:
        main()
