"""Sensitivity analysis: SALib sampling and indices checked on functions with known answers, then on the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SALib  # noqa: F401  (the test command installs it: a missing SALib is a failure, not a skip)

from cloudwar.cli.main import main
from cloudwar.cli.sensitivity import parse_param
from cloudwar.errors import CloudwarError, SweepError
from cloudwar.runs.sensitivity import (
    Output,
    Parameter,
    analyze,
    key_type,
    parse_output,
    problem,
    sample,
    sensitivity,
)
from cloudwar.runs.store import read_sweep


def ishigami(x: np.ndarray, a: float = 7.0, b: float = 0.1) -> np.ndarray:
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def ishigami_indices(a: float = 7.0, b: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Analytic first-order and total indices (Ishigami & Homma 1990; Sobol' & Levitan 1999)."""
    pi = np.pi
    v1 = 0.5 * (1 + b * pi**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = b**2 * pi**8 * (1 / 18 - 1 / 50)
    variance = v1 + v2 + v13
    return np.array([v1, v2, 0.0]) / variance, np.array([v1 + v13, v2, v13]) / variance


def test_sobol_recovers_the_analytic_ishigami_indices():
    params = [Parameter(f"x{i}", -np.pi, np.pi) for i in (1, 2, 3)]
    prob = problem(params)
    x = sample("sobol", prob, 2048, seed=1)
    assert x.shape == (2048 * 5, 3)
    table = analyze("sobol", prob, x, ishigami(x), seed=1).set_index(["parameter", "index"])
    first, total = ishigami_indices()
    assert first == pytest.approx([0.3139, 0.4424, 0.0], abs=1e-4)
    assert total == pytest.approx([0.5576, 0.4424, 0.2437], abs=1e-4)
    for i, name in enumerate(["x1", "x2", "x3"]):
        assert table.loc[(name, "S1"), "value"] == pytest.approx(first[i], abs=0.03)
        assert table.loc[(name, "ST"), "value"] == pytest.approx(total[i], abs=0.03)
        assert table.loc[(name, "ST"), "conf"] < 0.1


def test_sobol_second_order_finds_the_x1_x3_interaction():
    params = [Parameter(f"x{i}", -np.pi, np.pi) for i in (1, 2, 3)]
    prob = problem(params)
    x = sample("sobol", prob, 1024, seed=2, second_order=True)
    assert x.shape == (1024 * 8, 3)
    table = analyze("sobol", prob, x, ishigami(x), seed=2, second_order=True).set_index(["parameter", "index"])
    _, total = ishigami_indices()
    assert table.loc[("x1 x x3", "S2"), "value"] == pytest.approx(total[2], abs=0.05)  # all of x3's effect
    assert table.loc[("x1 x x2", "S2"), "value"] == pytest.approx(0.0, abs=0.05)


def test_morris_ranks_a_linear_function_exactly():
    # y = 10 a + 1 b + 0 c on [0, 1]^3: every elementary effect of a is 10, of b is 1, of c is 0.
    params = [Parameter("a", 0, 1), Parameter("b", 0, 1), Parameter("c", 0, 1)]
    prob = problem(params)
    x = sample("morris", prob, 20, seed=3)
    y = 10 * x[:, 0] + x[:, 1]
    table = analyze("morris", prob, x, y, seed=3).set_index(["parameter", "index"])["value"]
    assert table[("a", "mu_star")] == pytest.approx(10)
    assert table[("b", "mu_star")] == pytest.approx(1)
    assert table[("c", "mu_star")] == pytest.approx(0)
    assert table[("a", "sigma")] == pytest.approx(0, abs=1e-9)


def test_parse_param_and_its_errors():
    assert parse_param("choice.network_weight=0:1") == Parameter("choice.network_weight", 0.0, 1.0)
    assert parse_param("enterprises=300:600").integer
    for text, message in [
        ("choice.network_weight=1:1", "empty range"),
        ("choice.network_weight=1:0", "empty range"),
        ("choice.network_weight=0-1", "expected key=low:high"),
        ("choice.network_weight=a:b", "bounds must be numbers"),
        ("network.kind=0:1", "only numeric keys"),
        ("quarters=1.2:1.8", "no whole number"),
    ]:
        with pytest.raises(CloudwarError, match=message):
            parse_param(text)


def test_key_types_come_from_the_scenario_schema():
    assert key_type("enterprises") is int
    assert key_type("choice.network_weight") is float
    assert key_type("providers.Alibaba.price.ai") is float
    assert key_type("products.ai.contract_quarters") is int
    assert key_type("network.kind") is str
    assert key_type("no.such.key") is None


def test_parse_output():
    assert parse_output("hhi") == Output("hhi")
    assert parse_output("revenue_share, provider=Alibaba, region=china, quarter=4") == Output(
        "revenue_share", provider="Alibaba", region="china", quarter=4
    )
    assert parse_output("revenue_share,provider=Alibaba").label == "revenue_share (provider=Alibaba)"
    for text in ("provider=Alibaba", "hhi,colour=red", "hhi,quarter=last"):
        with pytest.raises(CloudwarError):
            parse_output(text)


SMALL = ["--set", "enterprises=300", "--set", "quarters=3", "--workers", "1"]


def test_sobol_on_the_model(tmp_path, capsys):
    out = tmp_path / "sobol"
    design = ["sensitivity", "--method", "sobol", "--samples", "8", *SMALL, "--out", str(out)]
    design += ["--param", "choice.network_weight=0:1", "--param", "enterprise.switching_cost=0:1"]
    design += ["--param", "discount_rate=0.05:0.15"]  # only discounts NPV: no effect on shares
    args = [*design, "--output", "revenue_share,provider=Alibaba", "--output", "hhi,product=ai"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "8 base samples -> 40 points x 1 seeds = 40 runs" in captured.err
    indices = pd.read_csv(out / "indices.csv")
    assert list(indices.columns) == ["output", "parameter", "index", "value", "conf"]
    assert len(indices) == 2 * 3 * 2
    assert set(indices["output"]) == {"revenue_share (provider=Alibaba)", "hhi (product=ai)"}
    assert np.isfinite(indices["value"]).all()
    # Common random numbers: a parameter the dynamics never read has exactly zero indices.
    inert = indices[indices["parameter"] == "discount_rate"]
    assert (inert["value"] == 0).all()
    moving = indices[(indices["parameter"] != "discount_rate") & (indices["index"] == "ST")]
    assert (moving["value"] > 0).all()
    assert (out / "sensitivity.png").stat().st_size > 10_000
    runs, _ = read_sweep(out)
    assert len(runs) == 40 and (runs["status"] == "ok").all()

    # Another output of the same design: nothing is run again, only analysed.
    assert main([*design, "--output", "npv,provider=Alibaba"]) == 0
    assert "all 40 runs were already done" in capsys.readouterr().err
    assert set(pd.read_csv(out / "indices.csv")["output"]) == {"npv (provider=Alibaba)"}
    # The same command again gives the same file, bootstrap confidence intervals included
    # (SALib leaves its bootstrap unseeded for a seed of 0, the default).
    first = (out / "indices.csv").read_bytes()
    assert main([*design, "--output", "npv,provider=Alibaba"]) == 0
    assert (out / "indices.csv").read_bytes() == first


def test_morris_on_the_model_rounds_whole_number_keys(tmp_path, capsys):
    out = tmp_path / "morris"
    args = ["sensitivity", "--method", "morris", "--param", "enterprises=200:400", "--param", "choice.ai_pull=0:0.5"]
    args += ["--output", "customer_share,provider=AWS,product=cloud", "--samples", "3", "--set", "quarters=3"]
    args += ["--workers", "1", "--out", str(out)]
    assert main(args) == 0
    runs, _ = read_sweep(out)
    assert len(runs) == 3 * 3
    assert runs["enterprises"].dtype == "int64"
    assert set(runs["enterprises"]) <= {200, 267, 333, 400}
    indices = pd.read_csv(out / "indices.csv")
    assert set(indices["index"]) == {"mu", "mu_star", "sigma"}


def test_sensitivity_input_errors_are_one_line(tmp_path, capsys):
    base = ["sensitivity", *SMALL, "--out", str(tmp_path / "x")]
    cases = [
        (["--param", "choice.network_weight=1:1", "--output", "hhi"], "empty range"),
        (["--param", "choice.nope=0:1", "--output", "hhi"], "--param choice.nope: unknown key"),
        (["--param", "enterprise.switching_cost=-1:1", "--output", "hhi"], "must be >= 0"),
        (["--param", "choice.network_weight=0:1", "--output", "hhi", "--samples", "6"], "power of 2"),
        (["--output", "hhi"], "at least one key=low:high"),
        (["--param", "choice.network_weight=0:1", "--output", "nosuchmetric"], "no metric 'nosuchmetric'"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cloudwar: error: ") and err.count("\n") == 1, err
        assert message in err
    assert not (tmp_path / "x").exists()


def test_an_output_that_does_not_exist_is_named(tmp_path, capsys):
    args = ["sensitivity", "--param", "choice.network_weight=0:1", "--samples", "2", *SMALL]
    assert main([*args, "--output", "revenue_share,provider=Nobody", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no provider 'Nobody' (known: Alibaba, Tencent, AWS," in err and err.count("\n") == 1


def test_sensitivity_is_a_python_function_on_the_same_machinery(tmp_path):
    """The function the command calls: indices back as a table, the runs in a resumable folder."""
    out = tmp_path / "py"
    lines = []
    call = {
        "parameters": {"choice.network_weight": (0, 1), "discount_rate": (0.05, 0.15)},
        "outputs": ["hhi,product=ai"],
        "out": out,
        "samples": 4,
        "fixed": {"enterprises": 300, "quarters": 3},
        "workers": 1,
    }
    result = sensitivity("baseline", **call, announce=lambda line, design: lines.append((line, design.n_runs)))
    assert lines == [("sobol: 2 parameters, 4 base samples -> 16 points x 1 seeds = 16 runs", 16)]
    assert result.report.ran == 16 and result.design.n_runs == 16
    table = result.indices.set_index(["parameter", "index"])
    assert table.loc[("discount_rate", "ST"), "value"] == 0  # never read by the dynamics
    assert table.loc[("choice.network_weight", "ST"), "value"] > 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "indices.csv"), result.indices, check_dtype=False)
    again = sensitivity("baseline", **call)
    assert (again.report.ran, again.report.already_done) == (0, 16)
    pd.testing.assert_frame_equal(again.indices, result.indices)


@pytest.mark.parametrize(
    "kwargs, param, message",
    [
        ({"samples": 2**40}, "samples", "runs is more than a design may hold"),
        ({"seeds": 10**9}, "seeds", "runs is more than a design may hold"),
        ({"method": "fourier"}, "method", "method must be one of sobol, morris"),
        ({"parameters": {"choice.network_weight": (1, 0)}}, "parameters", "empty range"),
        ({"outputs": ["revenue_share,colour=red"]}, "outputs", "unknown selector"),
    ],
)
def test_sensitivity_errors_name_the_python_argument(tmp_path, kwargs, param, message):
    arguments = {"parameters": {"choice.network_weight": (0, 1)}, "outputs": ["hhi"], "samples": 2}
    arguments.update(kwargs)
    with pytest.raises(SweepError, match=message) as caught:
        sensitivity("baseline", out=tmp_path / "x", workers=1, **arguments)
    assert caught.value.param == param and str(caught.value).startswith(param)
    assert not (tmp_path / "x").exists()


def test_a_huge_sample_is_refused_naming_the_option(tmp_path, capsys):
    args = ["sensitivity", "--param", "choice.network_weight=0:1", "--output", "hhi", "--samples", str(2**40)]
    assert main([*args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cloudwar: error: --samples: ") and err.count("\n") == 1, err
    assert "fewer enterprises" not in err
    assert not (tmp_path / "x").exists()
