"""Scenario layering (``extends``), effective values with their sources, and a run's provenance.

Real files in a temporary folder, the real command line in subprocesses, real runs compared byte for byte.
"""

import dataclasses
import json
import re
import tomllib

import pytest

from cloudwar import CloudMarket, ScenarioError, load_scenario
from cloudwar.cli.main import main
from cloudwar.scenario import (
    effective_values,
    read_layers,
    read_scenario_toml,
    scenario_label,
    shipped_scenarios,
    write_effective_scenario,
)
from cloudwar.scenario.effective import DEFAULT_SOURCE, OVERRIDE_SOURCE
from tests.test_cli import run

#: A partial scenario over the baseline, and the same changes as --set overrides.
CHILD = """\
extends = "baseline"
quarters = 3                  # quarters; assumption: a short test run
enterprises = 1500            # count; assumption: a small test world

[choice]
network_weight = 0.2          # utility per neighbour share; assumption: weaker peers

[[providers]]
name = "Alibaba"
price = { ai = { china = 0.2 } }          # USD per unit; assumption: a deeper cut in China
strategy = { kind = "margin_discipline" } # assumption: Alibaba turns to margins

[[providers]]
name = "Others"
remove = true
"""
CHILD_SETS = {
    "quarters": 3,
    "enterprises": 1500,
    "choice.network_weight": 0.2,
    "providers.Alibaba.price.ai.china": 0.2,
    "providers.Alibaba.strategy.kind": "margin_discipline",
}


def values(rows):
    return {row.key: row for row in rows}


def without_others(overrides):
    """The baseline with ``overrides`` and without the provider Others (what CHILD's remove does)."""
    s = load_scenario("baseline", overrides)
    return dataclasses.replace(s, providers=[p for p in s.providers if p.name != "Others"])


def test_a_partial_file_is_the_baseline_with_those_changes(tmp_path):
    child = tmp_path / "cheap_ai.toml"
    child.write_text(CHILD)
    s = load_scenario(child)
    expected = without_others(CHILD_SETS)
    assert s == dataclasses.replace(expected, name="cheap_ai")  # named after its file: it is not the baseline
    alibaba = s.providers[0]
    assert alibaba.price["ai"] == {"china": 0.2, "global": 1.6}  # one region changed, the other kept
    assert alibaba.price["cloud"] == {"*": 0.85}
    assert s.provider_names[-1] == "Baidu" and "Others" not in s.provider_names
    assert s.description == load_scenario("baseline").description


def test_a_partial_file_runs_bit_identical_to_the_same_overrides_by_set(tmp_path):
    """The same world by extends and by --set gives the same results table, byte for byte."""
    child = tmp_path / "child.toml"
    child.write_text(CHILD.replace('[[providers]]\nname = "Others"\nremove = true\n', ""))
    by_file = run("run", "--scenario", str(child), "--seed", "5", "--out", str(tmp_path / "file"))
    sets = [a for k, v in CHILD_SETS.items() for a in ("--set", f"{k}={v}")]
    by_set = run("run", *sets, "--seed", "5", "--out", str(tmp_path / "set"))
    assert by_file.returncode == 0 and by_set.returncode == 0, by_file.stderr + by_set.stderr
    table = (tmp_path / "file" / "results.csv").read_bytes()
    assert table == (tmp_path / "set" / "results.csv").read_bytes()
    assert b"margin_discipline" not in table and b"Others" in table  # a table of providers, not of settings


def test_chains_and_paths_relative_to_the_extending_file(tmp_path, monkeypatch):
    (tmp_path / "base").mkdir()
    (tmp_path / "mine").mkdir()
    (tmp_path / "base" / "parent.toml").write_text(
        'extends = "baseline"\nname = "parent"\nenterprises = 4000   # count; assumption: the parent\'s\n'
        '[[providers]]\nname = "Newcomer"\n'
        "quality = { cloud = 0.1, ai = 0.2 }   # utility units; assumption: a weak entrant\n"
        "price = { cloud = 0.9, ai = 1.0 }     # USD per unit; assumption\n"
        "marginal_cost = { cloud = 0.5, ai = 0.2 }\ncapex_per_unit = 2.5   # USD per CU; assumption\n"
        'strategy = { kind = "share_first", price_ratio = 0.8 }  # assumption: enters cheap\n'
    )
    (tmp_path / "mine" / "child.toml").write_text(
        'extends = "../base/parent.toml"\n'
        "quarters = 2   # quarters; assumption: the child's\n"
        "[[providers]]\n"
        'name = "Newcomer"\n'
        'strategy = { kind = "cost_plus" }   # assumption: a new kind drops share_first\'s price_ratio\n'
        "[[providers]]\n"
        'name = "AWS"\n'
        "presence = { china = 0.0 }   # fraction; assumption: AWS leaves China\n"
    )
    monkeypatch.chdir(tmp_path / "base")  # the chain resolves from the files, not the working folder
    child = tmp_path / "mine" / "child.toml"
    assert [layer.origin for layer in read_layers(child)] == [
        "baseline.toml",
        str(tmp_path / "base" / "parent.toml"),
        str(child),
    ]
    s = load_scenario(child)
    assert (s.name, s.enterprises, s.quarters) == ("child", 4000, 2)
    newcomer = s.providers[-1]
    assert newcomer.name == "Newcomer" and newcomer.quality["ai"] == {"*": 0.2}
    assert newcomer.strategy.kind == "cost_plus" and newcomer.strategy.params == {}
    aws = next(p for p in s.providers if p.name == "AWS")
    assert aws.presence == {"china": 0.0, "global": 1.0}
    rows = values(effective_values(child))
    assert rows["enterprises"].source == f"{tmp_path / 'base' / 'parent.toml'}: count; assumption: the parent's"
    assert rows["quarters"].source.startswith(f"{child}: quarters; assumption: the child's")
    assert rows["providers.AWS.presence.china"].source.endswith("fraction; assumption: AWS leaves China")
    assert rows["providers.AWS.presence.global"].source.startswith("baseline.toml: fraction; assumption")
    assert rows["providers.Newcomer.strategy.kind"].source.endswith("a new kind drops share_first's price_ratio")
    assert "providers.Newcomer.strategy.price_ratio" not in rows
    assert rows["providers.Newcomer.quality.cloud"].value == "0.1"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.toml": 'extends = "b.toml"', "b.toml": 'extends = "a.toml"'}, "a cycle ("),
        ({"a.toml": 'extends = "a.toml"'}, "a.toml: extends 'a.toml': a cycle ("),
        ({"a.toml": 'extends = "gone/parent.toml"'}, "extends 'gone/parent.toml': scenario file not found"),
        ({"a.toml": 'extends = "no_such_world"'}, "extends 'no_such_world': unknown scenario 'no_such_world'"),
        ({"a.toml": "extends = 3"}, "extends: expected a scenario name or a path (text), got 3"),
        ({"a.toml": 'extends = "b.toml"', "b.toml": "x = = 1"}, "b.toml: malformed TOML"),
        ({"a.toml": 'extends = "baseline"\n[[providers]]\nname = "Nobody"\nremove = true'}, "no provider named"),
        ({"a.toml": 'extends = "baseline"\n[[providers]]\nname = "AWS"\nremove = 1'}, "remove = true"),
        ({"a.toml": 'extends = "baseline"\n[[providers]]\nprice = { cloud = 1 }'}, "providers[0]: a provider of"),
        ({"a.toml": 'extends = "baseline"\n[choice]\nai_pul = 0.1'}, "unknown key 'choice.ai_pul'"),
        ({"a.toml": 'extends = "baseline"\n[regions.china]\nenterprise_share = 0.5'}, "must add up to 1"),
    ],
)
def test_bad_chains_are_one_line_and_exit_2(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text + "\n")
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario(tmp_path / "a.toml")
    out = tmp_path / "out"
    done = run("run", "--scenario", str(tmp_path / "a.toml"), "--out", str(out))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("cloudwar: error:"), done.stderr
    assert message in lines[0]
    assert not out.exists()


def test_a_cycle_names_its_files(tmp_path):
    for name, parent in (("a", "b"), ("b", "c"), ("c", "a")):
        (tmp_path / f"{name}.toml").write_text(f'extends = "{parent}.toml"\n')
    with pytest.raises(ScenarioError) as err:
        load_scenario(tmp_path / "a.toml")
    names = re.findall(r"(\w)\.toml", str(err.value).split("a cycle", 1)[1])
    assert names == ["a", "b", "c", "a"]


def test_describe_scenario_shows_each_value_with_its_source():
    done = run("describe", "--scenario", "baseline", "--set", "enterprises=5000", "--set", "providers.AWS.price.ai=2.5")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[1:] if line.strip()}
    assert re.search(r"^enterprises\s+5000\s+count\s+override --set$", lines["enterprises"])
    assert re.search(r"^providers.AWS.price.ai\s+2.5\s.*override --set$", lines["providers.AWS.price.ai"])
    assert "override --set" not in lines["providers.AWS.price.cloud"]
    world = lines["regions.global.market_size.cloud"]
    size = load_scenario("baseline").regions["global"].market_size["cloud"]  # calibrated: moves with the baseline
    assert re.search(rf"^regions.global.market_size.cloud\s+{size!r}\s", world)
    assert (
        "baseline.toml: USD per quarter at the start (quarter 0); calibrated" in world and "Synergy USD 107bn" in world
    )
    assert lines["providers.Alibaba.captive_bonus"].endswith(DEFAULT_SOURCE)
    assert lines["capacity.limited"].endswith(
        "baseline.toml: assumption: capacity constrains supply (facts.md: GPU supply limited Tencent)"
    )
    bad = run("describe", "--scenario", "baseline", "--set", "quarters=0")
    assert bad.returncode == 2 and bad.stdout == "" and "quarters: must be >= 1" in bad.stderr


def test_every_shipped_value_has_a_source():
    """Each value a shipped file sets carries the comment citing where it comes from."""
    for name in shipped_scenarios():
        raw = read_scenario_toml(name)
        for row in effective_values(name):
            if row.source == DEFAULT_SOURCE:
                top = row.key.split(".")[0]
                assert top not in raw or top in ("products", "regions", "providers") or isinstance(raw[top], dict)
            elif row.key.startswith("events."):  # an event cites its source in its own `source` field
                continue
            elif not row.key.endswith((".name", ".unit")) and row.key not in ("name", "description"):
                assert re.search(r"facts\.md|history\.(csv|md)|assumption|calibrated", row.source), (name, row)
        for event in raw.get("events", []):
            assert re.search(r"facts\.md|history\.(csv|md)|assumption", event.get("source", "")), (name, event)


def test_overrides_replace_sources_below_and_above_them():
    rows = values(effective_values("baseline", {"providers.Tencent.strategy": {"kind": "cost_plus", "markup": 0.3}}))
    assert rows["providers.Tencent.strategy.kind"].source == OVERRIDE_SOURCE
    assert rows["providers.Tencent.strategy.markup"] == (
        "providers.Tencent.strategy.markup",
        "0.3",
        "strategy parameter",
        OVERRIDE_SOURCE,
    )
    assert rows["providers.AWS.strategy.kind"].source.startswith("baseline.toml: facts.md: AWS holds")


@pytest.mark.parametrize("name", sorted(shipped_scenarios()))
def test_the_effective_scenario_loads_back_the_same(tmp_path, name):
    s = load_scenario(name)
    path = write_effective_scenario(s, tmp_path / "scenario.toml")
    assert load_scenario(path) == s
    assert "extends" not in tomllib.loads(path.read_text())


def test_the_effective_scenario_of_a_smaller_world_still_loads(tmp_path):
    """--set enterprises below the file's oracle_sample is allowed; the written file samples everyone."""
    s = load_scenario("baseline", {"enterprises": 500})
    assert s.oracle_sample == 2000
    back = load_scenario(write_effective_scenario(s, tmp_path / "scenario.toml"))
    assert back == dataclasses.replace(s, oracle_sample=500)


def test_run_out_records_the_effective_scenario_and_reruns_identically(tmp_path, monkeypatch):
    import cloudwar.results

    titles = []
    plot = cloudwar.results.plot_results

    def recording_plot(results, path, title="", **kwargs):  # the real figure, with its title noted
        titles.append(title)
        return plot(results, path, title=title, **kwargs)

    monkeypatch.setattr(cloudwar.results, "plot_results", recording_plot)
    child = tmp_path / "child.toml"
    child.write_text(CHILD)
    first = tmp_path / "first"
    argv = ["run", "--scenario", str(child), "--seed", "7", "--set", "providers.AWS.strategy.kind=cost_plus"]
    argv += ["--set", "enterprises=1200", "--out", str(first)]
    assert main(argv) == 0
    label = "child + providers.AWS.strategy.kind=cost_plus, enterprises=1200"
    assert titles[0] == f"{label}: 3 quarters from 2025Q4, seed 7"
    record = json.loads((first / "provenance.json").read_text())
    assert record["scenario"] == str(child) and record["seed"] == 7
    assert record["overrides"] == {"providers.AWS.strategy.kind": "cost_plus", "enterprises": 1200}
    assert record["extends"] == ["baseline.toml", str(child)]
    assert record["command"].startswith("cloudwar run --scenario ") and "enterprises=1200" in record["command"]
    assert record["cloudwar_version"] == cloudwar.__version__ and record["versions"]["mesa"].startswith("3.5")
    assert record["label"] == label
    effective = (first / "scenario.toml").read_text()
    assert "enterprises = 1200 # override --set" in effective
    assert re.search(r'^name = "child \+ providers.AWS.strategy.kind=cost_plus, enterprises=1200"', effective, re.M)

    again = tmp_path / "again"
    assert main(["run", "--scenario", str(first / "scenario.toml"), "--seed", "7", "--out", str(again)]) == 0
    assert (again / "results.csv").read_bytes() == (first / "results.csv").read_bytes()
    assert titles[1] == titles[0]  # the effective scenario is named with the overrides it holds
    assert load_scenario(again / "scenario.toml") == load_scenario(first / "scenario.toml")


def test_a_label_names_the_overrides():
    assert scenario_label("baseline") == "baseline"
    label = scenario_label("baseline", {"providers.Alibaba.strategy.kind": "margin_discipline", "enterprises": 5000})
    assert label == "baseline + providers.Alibaba.strategy.kind=margin_discipline, enterprises=5000"
    assert scenario_label("x", {"capacity.limited": False, "p": {"kind": "cost_plus"}}) == (
        'x + capacity.limited=false, p={kind = "cost_plus"}'
    )


def test_the_model_and_sweeps_read_an_extending_file(tmp_path):
    """CloudMarket and read_scenario_toml (which sweeps use) take an extending file like any other."""
    child = tmp_path / "child.toml"
    child.write_text(CHILD)
    model = CloudMarket(child, rng=1, overrides={"enterprises": 300})
    assert model.config == load_scenario(child, {"enterprises": 300})
    assert sorted(a.name for a in model.providers) == sorted(model.config.provider_names)
    raw = read_scenario_toml(child)
    assert "extends" not in raw and raw["name"] == "child" and len(raw["providers"]) == 8


def test_a_file_that_extends_may_lower_enterprises_below_the_inherited_sample(tmp_path):
    """Like --set enterprises=..., an extending file's smaller world keeps the sample (which covers everyone)."""
    (tmp_path / "small.toml").write_text('extends = "baseline"\nenterprises = 800\n')
    assert load_scenario(tmp_path / "small.toml").oracle_sample == 2000
    (tmp_path / "asks.toml").write_text('extends = "baseline"\nenterprises = 800\noracle_sample = 900\n')
    with pytest.raises(ScenarioError, match=re.escape("oracle_sample: must be at most enterprises (800), got 900")):
        load_scenario(tmp_path / "asks.toml")
    (tmp_path / "root.toml").write_text(
        read_layers("baseline")[0].text.replace("enterprises = 20000", "enterprises = 800")
    )
    with pytest.raises(ScenarioError, match="oracle_sample: must be at most enterprises"):
        load_scenario(tmp_path / "root.toml")  # a file without extends asks for its own sample
    (tmp_path / "grandchild.toml").write_text('extends = "small.toml"\noracle_sample = 1000\n')
    with pytest.raises(ScenarioError, match=re.escape("(800), got 1,000")):
        load_scenario(tmp_path / "grandchild.toml")
