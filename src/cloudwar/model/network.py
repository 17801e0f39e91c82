"""Building enterprise networks and keeping neighbour counts.

The network is held as a compressed sparse row (CSR) adjacency: ``indptr`` (n + 1) and
``indices`` (one entry per link end, int32). Two builders give the same rule:

* :func:`clustered_network` builds it in numpy arrays (for 100,000 enterprises and more);
* :func:`networkx_clustered_network` builds it with networkx graphs (small and medium populations).

The rule: inside each (region, industry) cluster enterprises sit on a Watts-Strogatz ring
(each linked to its nearest cluster members, a fraction ``rewiring`` of those links rewired at
random inside the cluster); the remaining links go to random enterprises of other industries,
mostly in the same region. This gives industry clusters with high clustering and short paths.

:class:`NeighbourCounts` keeps, for every enterprise, how many neighbours are in each state
(e.g. use each provider), and updates only the neighbours of enterprises that changed state.
:class:`CompleteNetwork` is the everyone-knows-everyone case, held as totals, not links.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np

if TYPE_CHECKING:
    from cloudwar.scenario import NetworkSpec

REWIRING = 0.1  # Watts-Strogatz rewiring probability inside a cluster (assumption)

#: Below this many enterprises a "clustered" network is built as networkx graphs (about 1 s per 5,000
#: enterprises); from it on, in numpy arrays (about 1 s per million links).
NETWORKX_LIMIT = 10_000


@dataclass
class Network:
    """A sparse undirected network in CSR form."""

    indptr: np.ndarray  # int64, n + 1
    indices: np.ndarray  # int32, neighbours of node i are indices[indptr[i]:indptr[i+1]]

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    @cached_property
    def degree(self) -> np.ndarray:
        return np.diff(self.indptr).astype(np.int32)

    @cached_property
    def inv_degree(self) -> np.ndarray:
        """1 / degree (0 for isolated enterprises), float32; shared by all neighbour counters."""
        degree = self.degree
        return np.where(degree > 0, 1.0 / np.maximum(degree, 1), 0.0).astype(np.float32)

    @property
    def links(self) -> int:
        """Number of undirected links."""
        return len(self.indices) // 2

    def neighbours(self, i: int) -> np.ndarray:
        return self.indices[self.indptr[i] : self.indptr[i + 1]]

    def counter(self, state: np.ndarray, n_states: int) -> NeighbourCounts:
        return SparseNeighbourCounts(self, state, n_states)

    def to_networkx(self, nodes: np.ndarray | None = None) -> nx.Graph:
        """The network (or the subgraph induced by ``nodes``) as a networkx graph."""
        g = nx.Graph()
        keep = np.arange(self.n) if nodes is None else np.asarray(nodes)
        g.add_nodes_from(int(i) for i in keep)
        mask = np.zeros(self.n, dtype=bool)
        mask[keep] = True
        for i in keep:
            nb = self.neighbours(int(i))
            g.add_edges_from((int(i), int(j)) for j in nb[mask[nb]] if j > i)
        return g

    @property
    def nbytes(self) -> int:
        return self.indptr.nbytes + self.indices.nbytes + self.degree.nbytes + self.inv_degree.nbytes


class CompleteNetwork:
    """Everyone is linked to everyone else; neighbour counts are totals minus oneself."""

    def __init__(self, n: int):
        self.n = n

    @property
    def degree(self) -> np.ndarray:
        return np.full(self.n, self.n - 1, dtype=np.int64)

    @property
    def links(self) -> int:
        return self.n * (self.n - 1) // 2

    def neighbours(self, i: int) -> np.ndarray:
        return np.delete(np.arange(self.n), i)

    def counter(self, state: np.ndarray, n_states: int) -> NeighbourCounts:
        return CompleteNeighbourCounts(self, state, n_states)

    def to_networkx(self, nodes: np.ndarray | None = None) -> nx.Graph:
        keep = range(self.n) if nodes is None else [int(i) for i in nodes]
        return nx.complete_graph(keep)

    nbytes = 0


class NeighbourCounts:
    """How many neighbours of each enterprise are in each state."""

    def shares(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), n_states) share of each enterprise's neighbours in each state (0 if isolated)."""
        raise NotImplementedError

    def state_share(self, idx: np.ndarray, state: int) -> np.ndarray:
        """(len(idx),) share of each enterprise's neighbours in ``state`` (0 if isolated)."""
        return self.shares(idx)[:, state]

    def move(self, who: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Enterprises ``who`` changed state from ``old`` to ``new`` (the state array is updated by the caller)."""
        raise NotImplementedError

    def add_shares(self, out: np.ndarray, idx: np.ndarray, weight: float) -> None:
        """``out`` (k, len(idx)) += weight x share of neighbours in each of the first k states (states first)."""
        out += weight * self.shares(idx)[:, : out.shape[0]].T


class SparseNeighbourCounts(NeighbourCounts):
    """Counts per state and enterprise, int16 (int32 for degrees of 32,767 and more).

    Held states first, ``(n_states, n)``: the choice reads the counts of the enterprises due as
    (providers, enterprises) rows, the layout of the utilities (:meth:`add_shares`), with one
    contiguous take instead of a transposed read (twice as fast; updates cost the same). With two
    states (e.g. adopted or not) only the count of state 1 is stored, ``(n,)``; state 0 is degree minus it.
    """

    def __init__(self, network: Network, state: np.ndarray, n_states: int):
        self.network = network
        self.n_states = n_states
        degree = network.degree
        self.degree = degree
        self.inv_degree = network.inv_degree
        dtype = np.int16 if (degree.max(initial=0) < np.iinfo(np.int16).max) else np.int32
        n = network.n
        self.counts = np.zeros(n if n_states == 2 else (n_states, n), dtype=dtype)
        indptr, indices = network.indptr, network.indices
        rows = max(1, CHUNK // 32)  # rows in chunks: the temporaries stay small (a few MB)
        for a in range(0, n, rows):
            b = min(a + rows, n)
            owner = np.repeat(np.arange(b - a, dtype=np.int64), degree[a:b])
            neighbour_state = state[indices[indptr[a] : indptr[b]]]
            if n_states == 2:
                self.counts[a:b] = np.bincount(owner, weights=neighbour_state == 1, minlength=b - a)
            else:
                flat = neighbour_state.astype(np.int64) * (b - a) + owner  # states first, as held
                self.counts[:, a:b] = np.bincount(flat, minlength=(b - a) * n_states).reshape(n_states, b - a)

    def add_shares(self, out: np.ndarray, idx: np.ndarray, weight: float) -> None:
        if self.n_states == 2:
            super().add_shares(out, idx, weight)
            return
        scale = (weight * self.inv_degree[idx]).astype(out.dtype)
        counts = np.take(self.counts[: out.shape[0]], idx, axis=1)
        out += np.multiply(counts, scale, out=np.empty(counts.shape, dtype=out.dtype))

    def state_share(self, idx: np.ndarray, state: int) -> np.ndarray:
        if self.n_states == 2 and state == 1:  # the stored count: no (len(idx), 2) table
            return (self.counts[idx] * self.inv_degree[idx]).astype(np.float64)
        return super().state_share(idx, state)

    def shares(self, idx: np.ndarray) -> np.ndarray:
        if self.n_states == 2:
            ones = self.counts[idx] * self.inv_degree[idx]
            return np.column_stack([np.where(self.degree[idx] > 0, 1.0 - ones, 0.0), ones])
        return np.ascontiguousarray((np.take(self.counts, idx, axis=1) * self.inv_degree[idx]).T)

    def _link_ends(self, who: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of every enterprise in ``who`` (concatenated) and how many each has."""
        indptr = self.network.indptr
        starts = indptr[who]
        lengths = indptr[who + 1] - starts
        first = np.cumsum(lengths) - lengths  # where each enterprise's run begins in the output
        positions = np.repeat(starts - first, lengths) + np.arange(int(lengths.sum()))
        return self.network.indices[positions], lengths

    def move(self, who: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        if len(who) == 0:
            return
        neighbours, lengths = self._link_ends(who)
        if len(neighbours) == 0:
            return
        flat = self.counts.reshape(-1)
        # Values of the array's own dtype take numpy's fast ufunc.at path (about 25x faster).
        ones = np.ones(len(neighbours), dtype=flat.dtype)
        if self.n_states == 2:
            step = new - old
            delta = ones if np.all(step == 1) else np.repeat(step.astype(flat.dtype), lengths)
            np.add.at(flat, neighbours.astype(np.intp), delta)
            return
        n = self.network.n
        neighbours = neighbours.astype(np.intp)
        np.subtract.at(flat, np.repeat(np.asarray(old, dtype=np.intp) * n, lengths) + neighbours, ones)
        np.add.at(flat, np.repeat(np.asarray(new, dtype=np.intp) * n, lengths) + neighbours, ones)

    @property
    def nbytes(self) -> int:
        return self.counts.nbytes


class CompleteNeighbourCounts(NeighbourCounts):
    def __init__(self, network: CompleteNetwork, state: np.ndarray, n_states: int):
        self.n = network.n
        self.state = state.copy()
        self.n_states = n_states
        self.totals = np.bincount(state, minlength=n_states).astype(np.int64)

    def shares(self, idx: np.ndarray) -> np.ndarray:
        if self.n <= 1:
            return np.zeros((len(idx), self.n_states))
        counts = np.broadcast_to(self.totals, (len(idx), self.n_states)).astype(float)
        counts[np.arange(len(idx)), self.state[idx]] -= 1.0
        return counts / (self.n - 1)

    def move(self, who: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        self.totals -= np.bincount(old, minlength=self.n_states)
        self.totals += np.bincount(new, minlength=self.n_states)
        self.state[who] = new

    nbytes = 0


def _clusters(region: np.ndarray, industry: np.ndarray, n_industries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Members sorted by cluster, each cluster's start and size."""
    cluster = region.astype(np.int64) * n_industries + industry
    order = np.argsort(cluster, kind="stable").astype(np.int32)
    sizes = np.bincount(cluster, minlength=int(cluster.max(initial=0)) + 1)
    starts = np.cumsum(sizes) - sizes
    return order, starts, sizes


def _cross_links(
    rng: np.random.Generator, region: np.ndarray, n_links: int, within_region: float
) -> tuple[np.ndarray, np.ndarray]:
    """Random links between industries, a share ``within_region`` of them inside one region."""
    n = len(region)
    src = rng.integers(0, n, size=n_links)
    same = rng.random(n_links) < within_region
    order = np.argsort(region, kind="stable")
    sizes = np.bincount(region)
    starts = np.cumsum(sizes) - sizes
    r = region[src]
    local = order[starts[r] + (rng.random(n_links) * sizes[r]).astype(np.int64)]
    anywhere = rng.integers(0, n, size=n_links)
    dst = np.where(same, local, anywhere)
    return src, dst


CHUNK = 1 << 20  # links processed at a time when building a CSR: bounds the builder's temporaries
SMALL_CHUNK = 1 << 18  # the same where a pass holds several int64 temporaries per link
SMALL_CSR_LINKS = 1 << 18  # up to this many links a CSR is built in one sort (_to_csr_small)


class _LinkKeys:
    """Undirected links as int64 keys ``low * n + high`` in one preallocated array, self-links dropped."""

    def __init__(self, n: int, capacity: int):
        self.n = n
        self.keys = np.empty(capacity, dtype=np.int64)
        self.filled = 0

    def add(self, src: np.ndarray, dst: np.ndarray) -> None:
        for a in range(0, len(src), CHUNK):
            s, d = src[a : a + CHUNK], dst[a : a + CHUNK]
            low = np.minimum(s, d).astype(np.int64)
            high = np.maximum(s, d)
            keep = low != high
            block = low[keep] * self.n + high[keep]
            self.keys[self.filled : self.filled + len(block)] = block
            self.filled += len(block)


def _to_csr(n: int, keys: np.ndarray) -> Network:
    """Symmetric CSR from undirected link keys (``low * n + high``); drops duplicates; consumes ``keys``.

    Row r holds its lower neighbours followed by its higher ones, each ascending. The keys are
    sorted and de-duplicated in place; sorted by (low, high), the higher neighbours of every row
    come out in CSR order and go straight to their slots. The keys are then transposed in place
    to ``high * n + low`` and sorted again, which lines up every row's lower neighbours the same
    way. Peak memory: the keys (8 bytes a link), the result (8 bytes a link), two int64 arrays per
    enterprise, and chunk temporaries; no per-link index or argsort array.
    """
    if len(keys) <= SMALL_CSR_LINKS:
        return _to_csr_small(n, keys)
    keys.sort()
    # De-duplicate in place, chunk by chunk (the write position never passes the read position).
    write = 0
    previous = -1
    for begin in range(0, len(keys), CHUNK):
        block = keys[begin : begin + CHUNK]
        fresh = np.empty(len(block), dtype=bool)
        fresh[0] = block[0] != previous
        np.not_equal(block[1:], block[:-1], out=fresh[1:])
        previous = block[-1]
        kept = block[fresh]
        keys[write : write + len(kept)] = kept
        write += len(kept)
    keys = keys[:write]
    row_starts = np.arange(n + 1, dtype=np.int64) * n  # key of (row, 0), for finding each row's run
    lower_count = np.zeros(n, dtype=np.int64)  # row r's neighbours below r: links (low, r)
    for begin in range(0, len(keys), CHUNK):
        lower_count += np.bincount(keys[begin : begin + CHUNK] % n, minlength=n)
    first_key = np.searchsorted(keys, row_starts)  # where each row's run of (row, higher) keys starts
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lower_count + np.diff(first_key), out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    # Higher neighbours of row r sit after its lower ones: slot = indptr[r] + lower_count[r] + rank in run.
    offset = lower_count
    offset += indptr[:-1]
    offset -= first_key[:-1]
    _scatter_runs(keys, n, offset, indices)
    # Lower neighbours: transpose the keys to (high, low), sort again; they open each row.
    for begin in range(0, len(keys), SMALL_CHUNK):
        block = keys[begin : begin + SMALL_CHUNK]
        block[:] = (block % n) * n + block // n
    keys.sort()
    del first_key
    first_key = np.searchsorted(keys, row_starts)
    offset = np.subtract(indptr[:-1], first_key[:-1], out=offset)
    _scatter_runs(keys, n, offset, indices)
    return Network(indptr=indptr, indices=indices)


def _to_csr_small(n: int, keys: np.ndarray) -> Network:
    """:func:`_to_csr` for a few hundred thousand links at most: the same arrays, in fewer passes.

    Every link is written in both directions as a key ``row * n + column`` and the keys are sorted
    once: each row's neighbours then come out ascending, lower ones before higher ones, as
    :func:`_to_csr` lays them out. Its chunked, in-place passes bound memory at millions of links;
    here the temporaries are a few MB, and the passes that cost (int64 divisions, scatters) are fewer.
    """
    keys.sort()
    unique = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys
    low = unique // n
    high = unique - low * n
    degree = np.bincount(low, minlength=n) + np.bincount(high, minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(degree, out=indptr[1:])
    directed = np.concatenate([unique, high * n + low])
    directed.sort()
    directed -= np.repeat(np.arange(n, dtype=np.int64) * n, degree)  # the row's part of each key
    return Network(indptr=indptr, indices=directed.astype(np.int32))


def _scatter_runs(keys: np.ndarray, n: int, offset: np.ndarray, indices: np.ndarray) -> None:
    """indices[offset[row] + t] = column of key t, for sorted keys ``row * n + column``."""
    for begin in range(0, len(keys), SMALL_CHUNK):
        block = keys[begin : begin + SMALL_CHUNK]
        row = block // n
        slot = offset[row]
        slot += np.arange(begin, begin + len(block))
        indices[slot] = block - row * n


def clustered_network(
    rng: np.random.Generator,
    region: np.ndarray,
    industry: np.ndarray,
    n_industries: int,
    mean_degree: float,
    within_industry: float,
    within_region: float,
) -> Network:
    """Industry-clustered small-world network built in numpy arrays (no networkx objects)."""
    n = len(region)
    order, starts, sizes = _clusters(region, industry, n_industries)
    half_ring = int(round(mean_degree * within_industry / 2))
    n_cross = int(round(n * mean_degree * (1.0 - within_industry) / 2))
    cluster_of_pos = np.repeat(np.arange(len(sizes)), sizes)
    size_of_pos = sizes[cluster_of_pos]
    ring_links = sum(int(sizes[sizes > d].sum()) for d in range(1, half_ring + 1))
    if ring_links + n_cross == 0:
        return empty_network(n)
    links = _LinkKeys(n, ring_links + n_cross)
    pos_in_cluster = np.arange(n) - starts[cluster_of_pos]
    for d in range(1, half_ring + 1):
        pos = np.nonzero(size_of_pos > d)[0]  # a cluster of d members or fewer has no d-th ring neighbour
        first = starts[cluster_of_pos[pos]]
        target_pos = first + (pos_in_cluster[pos] + d) % size_of_pos[pos]
        rewire = rng.random(len(pos)) < REWIRING
        random_pos = first + (rng.random(len(pos)) * size_of_pos[pos]).astype(np.int64)
        target_pos = np.where(rewire, random_pos, target_pos)
        del rewire, random_pos, first
        links.add(order[pos], order[target_pos])
        del pos, target_pos
    del cluster_of_pos, size_of_pos, pos_in_cluster
    if n_cross:
        links.add(*_cross_links(rng, region, n_cross, within_region))
    return _to_csr(n, links.keys[: links.filled])


def networkx_clustered_network(
    rng: np.random.Generator,
    region: np.ndarray,
    industry: np.ndarray,
    n_industries: int,
    mean_degree: float,
    within_industry: float,
    within_region: float,
) -> Network:
    """The same rule as :func:`clustered_network`, built as a networkx graph, then held as CSR."""
    n = len(region)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    order, starts, sizes = _clusters(region, industry, n_industries)
    ring_degree = 2 * int(round(mean_degree * within_industry / 2))
    for start, size in zip(starts, sizes, strict=True):
        if size < 2:
            continue
        members = order[start : start + size]
        k = min(ring_degree, size - 1 - (size - 1) % 2) if size > 2 else 1
        seed = int(rng.integers(2**31))
        cluster = (
            nx.watts_strogatz_graph(int(size), int(k), REWIRING, seed=seed) if k >= 2 else nx.path_graph(int(size))
        )
        graph.add_edges_from((int(members[u]), int(members[v])) for u, v in cluster.edges())
    n_cross = int(round(n * mean_degree * (1.0 - within_industry) / 2))
    if n_cross:
        s, t = _cross_links(rng, region, n_cross, within_region)
        graph.add_edges_from((int(u), int(v)) for u, v in zip(s, t, strict=True) if u != v)
    adjacency = nx.to_scipy_sparse_array(graph, nodelist=range(n), format="csr")
    return Network(indptr=adjacency.indptr.astype(np.int64), indices=adjacency.indices.astype(np.int32))


def empty_network(n: int) -> Network:
    return Network(indptr=np.zeros(n + 1, dtype=np.int64), indices=np.zeros(0, dtype=np.int32))


def build_network(
    spec: NetworkSpec, rng: np.random.Generator, region: np.ndarray, industry: np.ndarray, n_industries: int
) -> Network | CompleteNetwork:
    """The network a scenario's ``network`` table asks for, over enterprises of these regions and industries.

    ``clustered`` picks the builder by size (:data:`NETWORKX_LIMIT`); links are drawn from ``rng``.
    """
    n = len(region)
    if spec.kind == "complete":
        return CompleteNetwork(n)
    if spec.kind == "none" or spec.mean_degree == 0:
        return empty_network(n)
    use_networkx = spec.kind == "clustered_networkx" or (spec.kind == "clustered" and n < NETWORKX_LIMIT)
    builder = networkx_clustered_network if use_networkx else clustered_network
    return builder(rng, region, industry, n_industries, spec.mean_degree, spec.within_industry, spec.within_region)
