"""Malformed input is refused in one line, and every server the project starts listens on 127.0.0.1 only.

Issue 14: values that overflowed the float32 choice step or float64 money silently, reserved and
unaddressable names, missing or zero market sizes, an oracle sample larger than the population,
a strategy that calls ``sys.exit``; and the Dask and Solara servers that opened ports on every
interface. CLI-level cases run ``python -m cloudwar.cli`` as a user would.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

import psutil
import pytest

from cloudwar import CloudMarket, ScenarioError, load_scenario
from cloudwar.scenario import describe_fields, parse_scenario, read_scenario_toml
from cloudwar.strategies import Strategy, StrategyError
from tests.dask_cluster import loopback_dask_cluster

CLI = [sys.executable, "-m", "cloudwar.cli"]
QUICK = ["run", "--quarters", "2", "--set", "enterprises=500"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def assert_refused(done: subprocess.CompletedProcess, message: str) -> None:
    """Exit 2, one line ``cloudwar: error: ...`` containing ``message``, no traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cloudwar: error: "), done.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------------------------------
# The command line: one line, exit 2, nothing written to --out
# ------------------------------------------------------------------------------------------
MALFORMED = [
    # 3. values the float32 choice step or float64 money cannot hold exactly
    ("products.ai.logit_scale=1e-40", "products.ai.logit_scale: must be >= 0.01"),
    ("products.cloud.logit_scale=0", "products.cloud.logit_scale: must be >= 0.01"),
    ("providers.Others.quality.ai=1e300", "providers.Others.quality.ai: must be <= 100"),
    ("providers.Alibaba.quality.cloud.china=-1e9", "providers.Alibaba.quality.cloud.china: must be >= -100"),
    ("products.ai.outside_quality=1e30", "products.ai.outside_quality: must be <= 100"),
    ("products.cloud.reference_price=1e-300", "products.cloud.reference_price: must be >= 1e-06"),
    ("providers.AWS.price.cloud=1e300", "providers.AWS.price.cloud: must be <= 1e+06"),
    ("providers.AWS.marginal_cost.ai=1e200", "providers.AWS.marginal_cost.ai: must be <= 1e+06"),
    ("providers.Tencent.captive_bonus=1e39", "providers.Tencent.captive_bonus: must be <= 100"),
    ("enterprise.switching_cost=1e10", "enterprise.switching_cost: must be <= 100"),
    ("enterprise.price_sensitivity=1e20", "enterprise.price_sensitivity: must be <= 100"),
    ("enterprise.price_sensitivity_spread=50", "enterprise.price_sensitivity_spread: must be <= 2"),
    ("choice.network_weight=1e40", "choice.network_weight: must be <= 100"),
    ("choice.service_weight=1e6", "choice.service_weight: must be <= 10"),
    ("choice.ai_pull=1e38", "choice.ai_pull: must be <= 100"),
    ("regions.global.market_size.cloud=1e300", "regions.global.market_size.cloud: must be <= 1e+13"),
    ("providers.AWS.fixed_opex=1e308", "providers.AWS.fixed_opex: must be <= 1e+13"),
    ("providers.AWS.capex_per_unit=1e300", "providers.AWS.capex_per_unit: must be <= 1e+06"),
    ("products.cloud.compute_per_unit=1e300", "products.cloud.compute_per_unit: must be <= 1e+06"),
    ("capacity.initial_experience=1e300", "capacity.initial_experience: must be <= 1e+06"),
    ("adoption.usage_cap=1e300", "adoption.usage_cap: must be <= 1e+12"),
    ("rmb_per_usd=1e300", "rmb_per_usd: must be <= 1e+06"),
    ("enterprises=9223372036854775807", "enterprises: must be <= 2,147,483,647"),
    ("--quarters 100000", "quarters: must be <= 4,000"),
    # 4. names
    ('providers.Alibaba.name="all"', "providers[0].name: provider name 'all' is reserved"),
    ('providers.Alibaba.name="ALL"', "providers[0].name: provider name 'ALL' is reserved"),
    ('providers.Alibaba.name=""', "providers[0].name: a provider name cannot be empty"),
    ('providers.Alibaba.name="   "', "providers[0].name: a provider name cannot be empty"),
    ('providers.Alibaba.name="Ali.baba"', "provider name 'Ali.baba' contains '.'"),
    ('providers.Alibaba.name="a=b"', "provider name 'a=b' contains '='"),
    ('providers.Alibaba.name=" Alibaba"', "has spaces at its ends"),
    ('providers.Alibaba.name="Ali\\nbaba"', "contains '\\n'"),
    ('providers.Tencent.name="Alibaba"', "providers[1].name: two providers are named 'Alibaba'"),
    ("providers.Alibaba.name=5", "providers[0].name: expected text, got 5"),
    # 7. market sizes, the oracle sample, --set on a whole provider
    ("regions.china.market_size.cloud=0", "regions.china.market_size.cloud: must be > 0"),
    ("regions.china.market_size.ai=-1", "regions.china.market_size.ai: must be > 0"),
    ("regions.china.market_size={cloud=1e9}", "regions.china.market_size.ai: missing"),
    ("regions.global.market_size=nan", "regions.global.market_size: expected a table"),
    ("oracle_sample=100000", "oracle_sample: must be at most enterprises (500), got 100,000"),
    ("providers.Alibaba=5", "providers.Alibaba: a provider is a table and cannot be set to one value"),
    ("providers.Nobody=5", "providers.Nobody: no provider named 'Nobody'"),
    ("quarters.x=5", "quarters.x: 'quarters' is a value (40), not a table"),
    # further malformed values: NaN, inf, wrong types, empty tables
    ("products.cloud.logit_scale=nan", "products.cloud.logit_scale: expected a finite number"),
    ("providers.AWS.price.ai=inf", "providers.AWS.price.ai: expected a finite number"),
    ("providers.AWS.presence.china=-inf", "providers.AWS.presence.china: expected a finite number"),
    ("enterprise.industries=0", "enterprise.industries: must be >= 1"),
    ("network.mean_degree=-1", "network.mean_degree: must be >= 0"),
    ("adoption.substeps=true", "adoption.substeps: expected a whole number"),
    ("capacity.limited=1", "capacity.limited: expected true or false"),
    ("providers={}", "providers: expected a list"),
    ("providers=[]", "providers: at least one provider is required"),
    ("products={}", "products: at least one product line is required"),
    ("regions={}", "regions: at least one region is required"),
    ("enterprise=[1, 2]", "enterprise: expected a table"),
    ("providers.AWS.strategy=[]", "providers.AWS.strategy: expected a strategy name or table"),
    ("providers.AWS.quality.cloud={}", "providers.AWS.quality.cloud.china: missing"),
    # ten years at +1,000% a year is allowed; a thousand is not
    (
        "--quarters 4000 --set products.cloud.demand_growth=10",
        "products.cloud.demand_growth: a buyer's volume would grow",
    ),
]


@pytest.mark.parametrize(("override", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_values_are_refused_in_one_line(override, message):
    # An entry starting with -- is arguments (--quarters comes after QUICK's, so it wins); else one --set.
    args = override.split() if override.startswith("--") else ["--set", override]
    assert_refused(cli(*QUICK, *args), message)


def test_a_refused_command_leaves_out_as_it_was(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("earlier results\n")
    assert_refused(cli(*QUICK, "--set", "products.ai.logit_scale=1e-40", "--out", str(out)), "logit_scale")
    assert sorted(p.name for p in out.iterdir()) == ["results.csv"]
    assert (out / "results.csv").read_text() == "earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left beside it


def _write_baseline_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (resources.files("cloudwar.scenario.data") / "baseline.toml").read_text()
    assert old in text
    path = tmp_path / "edited.toml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_duplicate_provider_names_in_a_file_are_a_file_problem(tmp_path):
    path = _write_baseline_with(tmp_path, 'name = "Tencent"', 'name = "Alibaba"')
    assert_refused(cli(*QUICK, "--scenario", str(path)), "providers[1].name: two providers are named 'Alibaba'")
    # With a --set on that name, the message says there are two, not that the --set is wrong.
    assert_refused(
        cli(*QUICK, "--scenario", str(path), "--set", "providers.Alibaba.fixed_opex=1"),
        "providers.Alibaba.fixed_opex: 2 providers are named 'Alibaba' in the scenario",
    )


def test_a_region_named_all_is_refused_before_the_run(tmp_path):
    path = _write_baseline_with(tmp_path, "[regions.global]", "[regions.all]")
    assert_refused(cli(*QUICK, "--scenario", str(path)), "regions.all: region name 'all' is reserved")
    quoted = _write_baseline_with(tmp_path, "[regions.global]", '[regions."glo.bal"]')
    assert_refused(cli(*QUICK, "--scenario", str(quoted)), "regions.\"glo.bal\": region name 'glo.bal' contains '.'")


def test_a_file_whose_oracle_sample_exceeds_its_enterprises_is_refused(tmp_path):
    path = _write_baseline_with(tmp_path, "enterprises = 20000 ", "enterprises = 1000 ")
    assert_refused(cli("run", "--quarters", "2", "--scenario", str(path)), "oracle_sample: must be at most enterprises")
    # Lowering enterprises for a quick run keeps the file's sample, which then covers everyone.
    done = cli(*QUICK)
    assert done.returncode == 0, done.stderr


def test_a_strategy_calling_sys_exit_is_a_strategy_error(tmp_path):
    (tmp_path / "quitter.py").write_text(
        "import sys\nfrom cloudwar.strategies import Strategy\n\n"
        "class Quitter(Strategy):\n    def set_prices(self, provider, market):\n        sys.exit(3)\n"
    )
    done = subprocess.run(
        [*CLI, *QUICK, "--set", 'providers.AWS.strategy.kind="quitter:Quitter"'],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])},
    )
    assert_refused(done, "strategy of AWS (quitter:Quitter), quarter 1: SystemExit: 3")


# ------------------------------------------------------------------------------------------
# The schema, in process
# ------------------------------------------------------------------------------------------
def test_theory_mode_may_leave_market_size_out_and_sells_one_unit_per_enterprise():
    scenario = load_scenario("calvano_duopoly")
    assert scenario.enterprise.identical and not scenario.regions["market"].market_size
    raw = read_scenario_toml("calvano_duopoly")
    raw["enterprise"]["identical"] = False
    with pytest.raises(ScenarioError, match=re.escape("regions.market.market_size.cloud: missing")):
        parse_scenario(raw)


def test_sampling_everyone_is_allowed_and_a_reparse_keeps_the_lowered_population():
    small = load_scenario("baseline", {"enterprises": 500})
    assert small.oracle_sample == 2000  # the file's value, capped by the model at the population
    model = CloudMarket(small, rng=0, overrides={"quarters": 2})
    assert len(model.oracle_sample) == 500
    with pytest.raises(ScenarioError, match="oracle_sample: must be at most enterprises"):
        load_scenario(small, {"oracle_sample": 501})


def test_bounds_are_stated_in_the_field_docs():
    docs = {key: doc for key, _, _, doc in describe_fields()}
    assert "float32" in docs["products.<name>.logit_scale"]
    assert "float32" in docs["providers.<name>.quality"]
    assert "at most 1e13" in docs["regions.<name>.market_size"]


def test_a_strategy_exit_in_process_is_a_strategy_error_naming_provider_and_quarter():
    class Quitter(Strategy):
        def set_prices(self, provider, market):
            if market.quarter == 2:
                sys.exit(3)
            return provider.prices

    from cloudwar.strategies import REGISTRY

    REGISTRY["quitter_test"] = Quitter
    try:
        model = CloudMarket(
            "baseline", rng=0, overrides={"enterprises": 500, "providers.Baidu.strategy.kind": "quitter_test"}
        )
        model.step()
        with pytest.raises(StrategyError, match=re.escape("strategy of Baidu (quitter_test), quarter 2: SystemExit")):
            model.step()
    finally:
        del REGISTRY["quitter_test"]


# ------------------------------------------------------------------------------------------
# Servers bind 127.0.0.1 only
# ------------------------------------------------------------------------------------------
def listening_addresses(pids: list[int]) -> dict[int, set[str]]:
    """Addresses each process (and every process under it) listens on, by process id."""
    found: dict[int, set[str]] = {}
    for pid in pids:
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            for conn in process.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.setdefault(process.pid, set()).add(conn.laddr.ip)
    return found


@pytest.mark.slow
def test_the_dask_cluster_of_the_tests_and_benchmark_listens_on_loopback_only(tmp_path):
    with loopback_dask_cluster(tmp_path, worker_commands=2) as cluster:
        from distributed import Client

        with Client(cluster.address, timeout=30, set_as_default=False) as client:
            workers = client.scheduler_info()["workers"]
        found = listening_addresses(cluster.pids)
    assert cluster.address.startswith("tcp://127.0.0.1:")
    assert len(workers) == 2 and all(address.startswith("tcp://127.0.0.1:") for address in workers)
    # The scheduler (comm + HTTP), both nannies and both workers each listen somewhere, all on loopback.
    assert cluster.scheduler.pid in found and len(found) >= 5, found
    assert set().union(*found.values()) == {"127.0.0.1"}, found


def test_the_benchmark_starts_its_cluster_through_the_loopback_helper():
    text = (Path(__file__).resolve().parents[1] / "benchmarks" / "sweep_benchmark.py").read_text()
    assert "loopback_dask_cluster(" in text and '"scheduler", "--host"' not in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_cloudwar_serve_listens_on_loopback_only(tmp_path):
    port = _free_port()
    cloudwar = Path(sys.executable).with_name("cloudwar")
    with open(tmp_path / "server.log", "w") as log:
        server = subprocess.Popen([cloudwar, "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.25)  # polling the port until the server answers
        found = listening_addresses([server.pid])
    finally:
        server.terminate()
        server.wait(15)
    assert found and set().union(*found.values()) == {"127.0.0.1"}, found
