import networkx as nx
import numpy as np
import pytest
import scipy.sparse

from cloudwar.model import network
from cloudwar.model.network import CompleteNetwork, clustered_network, empty_network, networkx_clustered_network


def population(n=4000, seed=0, industries=10):
    rng = np.random.default_rng(seed)
    region = np.sort(rng.integers(0, 2, n)).astype(np.int8)
    industry = rng.integers(0, industries, n).astype(np.int16)
    return rng, region, industry


@pytest.mark.parametrize("builder", [clustered_network, networkx_clustered_network])
def test_network_is_simple_symmetric_and_has_the_mean_degree(builder):
    rng, region, industry = population()
    net = builder(rng, region, industry, 10, 20.0, 0.8, 0.9)
    g = net.to_networkx()
    assert nx.number_of_selfloops(g) == 0
    assert 2 * g.number_of_edges() == len(net.indices)  # every link stored both ways, no duplicates
    assert net.degree.mean() == pytest.approx(20.0, rel=0.05)
    a = nx.to_scipy_sparse_array(g, nodelist=range(net.n))
    assert (a != a.T).nnz == 0


@pytest.mark.parametrize("builder", [clustered_network, networkx_clustered_network])
def test_links_stay_mostly_inside_industry_and_region_and_cluster(builder):
    rng, region, industry = population()
    net = builder(rng, region, industry, 10, 20.0, 0.8, 0.9)
    owner = np.repeat(np.arange(net.n), net.degree)
    same_industry = (industry[owner] == industry[net.indices]) & (region[owner] == region[net.indices])
    assert same_industry.mean() > 0.75
    assert (region[owner] == region[net.indices]).mean() > 0.9
    clustering = nx.average_clustering(net.to_networkx())
    random_graph = nx.gnm_random_graph(net.n, net.links, seed=1)
    assert clustering > 5 * nx.average_clustering(random_graph)


def test_same_generator_same_network():
    a = clustered_network(*population(seed=5)[:1], *population(seed=5)[1:], 10, 20.0, 0.8, 0.9)
    b = clustered_network(*population(seed=5)[:1], *population(seed=5)[1:], 10, 20.0, 0.8, 0.9)
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)


@pytest.mark.parametrize("n_states", [2, 5])
def test_incremental_counts_equal_recounting(n_states):
    rng, region, industry = population(n=3000)
    net = clustered_network(rng, region, industry, 10, 12.0, 0.8, 0.9)
    state = rng.integers(0, n_states, net.n)
    counts = net.counter(state, n_states)
    for _ in range(5):
        who = np.sort(rng.choice(net.n, 400, replace=False))
        new = rng.integers(0, n_states, len(who))
        counts.move(who, state[who], new)
        state[who] = new
    fresh = net.counter(state, n_states)
    idx = np.arange(net.n)
    np.testing.assert_allclose(counts.shares(idx), fresh.shares(idx))
    # and against a direct look at the neighbours
    i = 17
    expected = np.bincount(state[net.neighbours(i)], minlength=n_states) / len(net.neighbours(i))
    np.testing.assert_allclose(counts.shares(np.array([i]))[0], expected, rtol=1e-6)


def test_complete_network_counts_everyone_but_oneself():
    state = np.array([0, 1, 1, 2, 2, 2])
    net = CompleteNetwork(len(state))
    counts = net.counter(state, 3)
    np.testing.assert_allclose(counts.shares(np.array([0]))[0], [0, 2 / 5, 3 / 5])
    np.testing.assert_allclose(counts.shares(np.array([3]))[0], [1 / 5, 2 / 5, 2 / 5])
    counts.move(np.array([0]), np.array([0]), np.array([1]))
    np.testing.assert_allclose(counts.shares(np.array([3]))[0], [0, 3 / 5, 2 / 5])


def test_isolated_enterprises_have_zero_shares():
    net = empty_network(5)
    counts = net.counter(np.zeros(5, dtype=np.int64), 3)
    np.testing.assert_array_equal(counts.shares(np.arange(5)), 0.0)


@pytest.mark.parametrize("one_sort", [True, False], ids=["one-sort path", "chunked path"])
def test_csr_from_links_matches_scipy_with_duplicates_and_self_links(monkeypatch, one_sort):
    # Small chunks, so the chunked passes (de-duplication across chunk borders, scatter) are exercised.
    monkeypatch.setattr(network, "CHUNK", 64)
    monkeypatch.setattr(network, "SMALL_CHUNK", 16)
    if not one_sort:
        monkeypatch.setattr(network, "SMALL_CSR_LINKS", -1)
    rng = np.random.default_rng(11)
    n = 300
    src, dst = rng.integers(0, n, 2_000), rng.integers(0, n, 2_000)
    src[:50], dst[:50] = src[50:100], dst[50:100]  # duplicates
    src[100:150] = dst[100:150]  # self-links
    links = network._LinkKeys(n, len(src))
    links.add(src, dst)
    net = network._to_csr(n, links.keys[: links.filled])
    keep = src != dst
    adjacency = scipy.sparse.coo_array(
        (np.ones(2 * keep.sum()), (np.r_[src[keep], dst[keep]], np.r_[dst[keep], src[keep]])), shape=(n, n)
    ).tocsr()
    adjacency.sum_duplicates()
    adjacency.sort_indices()
    np.testing.assert_array_equal(net.indptr, adjacency.indptr)
    np.testing.assert_array_equal(net.indices, adjacency.indices)  # every row ascending, no duplicates


def test_one_sort_csr_is_the_chunked_csr_bit_for_bit(monkeypatch):
    # Up to SMALL_CSR_LINKS links the CSR is built in one sort; the arrays (and so every run) must be
    # the chunked builder's, including isolated enterprises, duplicates and no links at all.
    rng = np.random.default_rng(5)
    for n, n_links in [(1, 0), (50, 0), (400, 30), (2_000, 9_000), (5_000, 60_000)]:
        src, dst = rng.integers(0, n, n_links), rng.integers(0, n, n_links)
        links = network._LinkKeys(n, n_links)
        links.add(src, dst)
        keys = links.keys[: links.filled]
        one_sort = network._to_csr(n, keys.copy())
        with monkeypatch.context() as patch:
            patch.setattr(network, "SMALL_CSR_LINKS", -1)
            chunked = network._to_csr(n, keys.copy())
        for a, b in [(one_sort.indptr, chunked.indptr), (one_sort.indices, chunked.indices)]:
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_array_builder_rows_are_ascending_and_hold_no_self_links():
    rng, region, industry = population(n=20_000, seed=3)
    net = clustered_network(rng, region, industry, 10, 20.0, 0.8, 0.9)
    owner = np.repeat(np.arange(net.n), net.degree)
    assert not np.any(net.indices == owner)
    same_row = owner[1:] == owner[:-1]
    assert np.all(net.indices[1:][same_row] > net.indices[:-1][same_row])
