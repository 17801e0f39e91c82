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

import networkx as nx
import numpy as np

REWIRING = 0.1  # Watts-Strogatz rewiring probability inside a cluster (assumption)


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

    def move(self, who: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Enterprises ``who`` changed state from ``old`` to ``new`` (the state array is updated by the caller)."""
        raise NotImplementedError


class SparseNeighbourCounts(NeighbourCounts):
    """Counts per enterprise and state, int16 (int32 for degrees of 32,767 and more).

    With two states (e.g. adopted or not) only the count of state 1 is stored; state 0 is
    degree minus it.
    """

    def __init__(self, network: Network, state: np.ndarray, n_states: int):
        self.network = network
        self.n_states = n_states
        degree = network.degree
        self.degree = degree
        self.inv_degree = network.inv_degree
        dtype = np.int16 if (degree.max(initial=0) < np.iinfo(np.int16).max) else np.int32
        owner = np.repeat(np.arange(network.n, dtype=np.int64), degree)
        if n_states == 2:
            self.counts = np.bincount(owner, weights=state[network.indices] == 1, minlength=network.n).astype(dtype)
        else:
            flat = owner * n_states + state[network.indices]
            self.counts = np.bincount(flat, minlength=network.n * n_states).astype(dtype).reshape(network.n, n_states)

    def shares(self, idx: np.ndarray) -> np.ndarray:
        if self.n_states == 2:
            ones = self.counts[idx] * self.inv_degree[idx]
            return np.column_stack([np.where(self.degree[idx] > 0, 1.0 - ones, 0.0), ones])
        return self.counts[idx] * self.inv_degree[idx, None]

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
            delta = np.repeat((new - old).astype(flat.dtype), lengths)
            np.add.at(flat, neighbours.astype(np.intp), delta)
            return
        base = neighbours.astype(np.intp) * self.n_states
        np.subtract.at(flat, base + np.repeat(old, lengths), ones)
        np.add.at(flat, base + np.repeat(new, lengths), ones)

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


def _fill_rows(indices: np.ndarray, first_slot: np.ndarray, keys: np.ndarray, n: int, chunk: int = 1 << 20) -> None:
    """Write ``keys`` (sorted row * n + column) into ``indices``, row r from ``first_slot[r]`` on, in chunks."""
    row_start = np.searchsorted(keys, np.arange(n, dtype=np.int64) * n)
    for begin in range(0, len(keys), chunk):
        block = keys[begin : begin + chunk]
        rows = block // n
        slots = first_slot[rows] + (np.arange(begin, begin + len(block)) - row_start[rows])
        indices[slots] = block - rows * n


def _to_csr(n: int, src: np.ndarray, dst: np.ndarray) -> Network:
    """Symmetric CSR from undirected link lists; drops self-links and duplicates.

    Memory-lean for millions of links: each undirected link is one int64 key (low * n + high),
    sorted in place and de-duplicated. Row r then holds its lower neighbours (from the sorted
    swapped keys) followed by its higher ones (from the sorted keys), each ascending.
    """
    keep = src != dst
    key = np.minimum(src, dst)[keep].astype(np.int64)
    key *= n
    key += np.maximum(src, dst)[keep]
    del keep
    key.sort()
    if len(key):
        fresh = np.empty(len(key), dtype=bool)
        fresh[0] = True
        np.not_equal(key[1:], key[:-1], out=fresh[1:])
        key = key[fresh]
        del fresh
    lower_count = np.bincount(key % n, minlength=n)  # row r's neighbours below r: links (low, r)
    degree = lower_count + np.bincount(key // n, minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(degree, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    _fill_rows(indices, indptr[:-1] + lower_count, key, n)
    swapped = key % n
    swapped *= n
    swapped += key // n
    del key
    swapped.sort()
    _fill_rows(indices, indptr[:-1], swapped, n)
    return Network(indptr=indptr, indices=indices)


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
    src_parts, dst_parts = [], []
    cluster_of_pos = np.repeat(np.arange(len(sizes)), sizes)
    pos_in_cluster = np.arange(n) - starts[cluster_of_pos]
    size_of_pos = sizes[cluster_of_pos]
    for d in range(1, half_ring + 1):
        ok = size_of_pos > d  # a cluster of d members or fewer has no d-th ring neighbour
        pos = np.nonzero(ok)[0]
        target_pos = starts[cluster_of_pos[pos]] + (pos_in_cluster[pos] + d) % size_of_pos[pos]
        rewire = rng.random(len(pos)) < REWIRING
        random_pos = starts[cluster_of_pos[pos]] + (rng.random(len(pos)) * size_of_pos[pos]).astype(np.int64)
        target_pos = np.where(rewire, random_pos, target_pos)
        src_parts.append(order[pos])
        dst_parts.append(order[target_pos])
    n_cross = int(round(n * mean_degree * (1.0 - within_industry) / 2))
    if n_cross:
        s, t = _cross_links(rng, region, n_cross, within_region)
        src_parts.append(s)
        dst_parts.append(t)
    if not src_parts:
        return empty_network(n)
    src = np.concatenate(src_parts).astype(np.int32, copy=False)
    del src_parts
    dst = np.concatenate(dst_parts).astype(np.int32, copy=False)
    del dst_parts
    return _to_csr(n, src, dst)


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
