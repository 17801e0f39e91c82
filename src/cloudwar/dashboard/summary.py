"""The dashboard's summary card: the quarter, the settings in effect, who leads, and a table per provider.

The table is :func:`cloudwar.results.summary_table` (what ``cloudwar run`` prints), restricted to
the charted markets; its colour swatches match every chart. With a pinned run,
:func:`comparison_table` adds the paired difference of the headline numbers (NPV, enterprise value, shares,
margin: this run minus the pinned one, at the same quarter). Nothing here imports Solara.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from html import escape

import pandas as pd
from matplotlib.colors import to_hex

from cloudwar import plots, quarters
from cloudwar.dashboard.charts import chart_markets, session_colours
from cloudwar.dashboard.controls import Controls, changes
from cloudwar.dashboard.session import MarketSession, PinnedRun
from cloudwar.results import ALL, share_column
from cloudwar.results import summary_table as results_summary
from cloudwar.scenario import Scenario

#: The columns of results.summary_table the card shows besides the market shares, with their headings.
TOTALS = {"operating margin": "op. margin", "cum. FCF (USD bn)": "cum. FCF, USD bn", "NPV (USD bn)": "NPV, USD bn"}
#: The headline numbers the comparison with a pinned run differences, and their unit there.
HEADLINES = ("NPV (USD bn)", "operating margin")


def _percent(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.1%}"


def summary_table(session: MarketSession, results: pd.DataFrame | None = None) -> pd.DataFrame:
    """This quarter per provider: revenue share of each charted market ('China AI share', fraction),
    operating margin (fraction), cumulative FCF and NPV (USD bn), from
    :func:`cloudwar.results.summary_table` of the session's results (or of ``results``, e.g. a
    pinned run's, with the session's markets and providers).

    Empty (no values) before the first quarter.
    """
    market = session.market
    assert market is not None
    shares = {share_column(*m): f"{plots.market_label(*m)} share" for m in chart_markets(market.config)}
    columns = [*shares, *TOTALS]
    index = pd.Index(market.provider_names, name="provider")
    if results is None:
        results = session.results() if session.quarter else None
    if results is None or results.empty:
        table = pd.DataFrame(index=index, columns=columns, dtype=float)
    else:
        table = results_summary(results).reindex(index=index, columns=columns)
    return table.rename(columns=shares)


def comparison_table(session: MarketSession, pinned: PinnedRun) -> tuple[int, pd.DataFrame]:
    """The paired difference of the headline numbers, this run minus ``pinned``, at the last quarter
    both have run (returned with the table): per provider of both, NPV and enterprise value
    (:func:`enterprise_value`) now, pinned and the difference (USD bn), and the difference of each charted market's share and of the operating
    margin (fractions: 0.012 = 1.2 percentage points). Empty if the runs share no provider."""
    quarter = min(session.quarter, pinned.quarter)
    now = summary_table(session, session.results()[session.results().quarter <= quarter])
    before = summary_table(session, pinned.results_until(quarter))
    common = [p for p in now.index if p in set(pd.unique(pinned.results.provider))]
    now, before = now.loc[common], before.loc[common]
    table = pd.DataFrame(index=now.index)
    table["NPV now (USD bn)"] = now["NPV (USD bn)"]
    table["NPV pinned (USD bn)"] = before["NPV (USD bn)"]
    table["Δ NPV (USD bn)"] = now["NPV (USD bn)"] - before["NPV (USD bn)"]
    value_now = enterprise_value(session.results(), quarter).reindex(common)
    value_before = enterprise_value(pinned.results, quarter).reindex(common)
    table["EV now (USD bn)"] = value_now
    table["EV pinned (USD bn)"] = value_before
    table["Δ EV (USD bn)"] = value_now - value_before
    for column in [c for c in now.columns if c.endswith(" share")] + ["operating margin"]:
        table[f"Δ {column}"] = now[column] - before[column]
    return quarter, table


def enterprise_value(results: pd.DataFrame, quarter: int) -> pd.Series:
    """Each provider's enterprise value at ``quarter`` (USD bn): NPV after tax so far plus the
    terminal value of what comes after, discounted to quarter 0 (:mod:`cloudwar.valuation`)."""
    rows = results[(results.metric == "enterprise_value") & (results.quarter == quarter)]
    rows = rows[(rows.region == ALL) & (rows["product"] == ALL) & (rows.provider != ALL)]
    return rows.set_index("provider")["value"] / 1e9


def leaders(table: pd.DataFrame) -> list[str]:
    """'China AI: Alibaba (35.8%)', ... and the highest margin, from :func:`summary_table`."""
    out = []
    for column in [c for c in table.columns if c.endswith(" share")] + ["operating margin"]:
        values = table[column]
        if values.notna().any():
            name = "highest margin" if column == "operating margin" else column.removesuffix(" share")
            out.append(f"{name}: {values.idxmax()} ({values.max():.1%})")
    return out


def summary_html(session: MarketSession) -> str:
    """The summary card: the quarter, the controls in effect, who leads, and a table of shares and margins.

    The table's colour swatches are the key to every chart.
    """
    market, c = session.market, session.controls
    if market is None or c is None:
        return "<p>No model. Change the controls and press <b>Reset</b>.</p>"
    config = market.config
    quarter = session.quarter
    when = f" ({quarters.label(config.start, quarter)})" if quarter else ""
    parts = [
        f'<h3 class="cloudwar-quarter">Quarter {quarter} of {config.quarters}{when}</h3>',
        f"<p>Preset <b>{escape(config.name)}</b>, seed {c.seed}, {market.population.n:,} enterprises; "
        f"switching cost {config.enterprise.switching_cost:.2f}, network weight {config.choice.network_weight:.2f}.</p>",
        f'<p class="cloudwar-strategies">Strategies: {escape(_strategies(config))}.</p>',
        f'<p class="cloudwar-changed">Changed from the preset: {escape(_changed(c))}.</p>',
    ]
    table = summary_table(session)
    if quarter == 0:
        parts.append(f"<p>The run starts in {escape(config.start)}: press <b>Step</b> or \u25b6.</p>")
    else:
        above = [name for name, value in table["operating margin"].items() if value >= plots.AWS_MARGIN]
        leading = " \u00b7 ".join(leaders(table))
        parts.append(
            f'<p class="cloudwar-leaders">Leaders: {escape(leading)}. '
            f"At or above the 30% margin line: {escape(', '.join(above) or 'nobody')}.</p>"
        )
    parts.append(_html_table(session, table.rename(columns=TOTALS), _percent, "cloudwar-table"))
    return "\n".join(parts)


def _html_table(session: MarketSession, table: pd.DataFrame, fraction: Callable[[float], str], classes: str) -> str:
    """A table per provider as HTML, each name with its colour swatch (the charts' colours):
    columns in USD bn as such, the others (fractions) written by ``fraction``."""
    colours = session_colours(session)
    head = "".join(f"<th>{escape(c)}</th>" for c in ["provider", *table.columns])
    rows = []
    for name, row in table.iterrows():
        swatch = f'<span class="cloudwar-swatch" style="background:{to_hex(colours[name])}"></span>'
        cells = [_bn(v) if "USD bn" in col else fraction(v) for col, v in row.items()]
        rows.append(f"<tr><td>{swatch}{escape(str(name))}</td>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    return f'<table class="{classes}"><tr>{head}</tr>{"".join(rows)}</table>'


def comparison_html(session: MarketSession, pinned: PinnedRun | None) -> str:
    """The comparison with the pinned run: what differs in the settings, and the paired differences
    of :func:`comparison_table`. Empty text without a pinned run or a model."""
    if pinned is None or session.market is None or session.controls is None:
        return ""
    differs = changes(pinned.controls, session.controls)
    settings = "; ".join(differs) if differs else "the same settings (another run of the same model)"
    start = quarters.label(pinned.start, pinned.quarter)
    parts = [
        f'<h4 class="cloudwar-compare-title">Compared with the pinned run (dashed in the charts, '
        f"pinned at quarter {pinned.quarter}, {start})</h4>",
        f'<p class="cloudwar-compare-settings">Pinned → this run: {escape(settings)}.</p>',
    ]
    if session.quarter == 0:
        parts.append("<p>Step this run to compare it with the pinned one.</p>")
        return "\n".join(parts)
    quarter, table = comparison_table(session, pinned)
    if table.empty:
        parts.append("<p>The pinned run has none of this run's providers: nothing to pair.</p>")
        return "\n".join(parts)
    parts.append(
        f"<p>This run minus the pinned run at quarter {quarter} ({quarters.label(session.market.config.start, quarter)}); "
        "shares and margin in percentage points (pp).</p>"
    )
    parts.append(_html_table(session, table, _pp, "cloudwar-table cloudwar-compare"))
    return "\n".join(parts)


def _pp(value: float) -> str:
    """A difference of fractions in percentage points, signed: +1.2 pp."""
    return "" if pd.isna(value) else f"{100 * value:+.1f} pp"


def _bn(value: float) -> str:
    return "" if pd.isna(value) else f"{value:,.2f}"


def _strategies(config: Scenario) -> str:
    """'Alibaba share_first, Tencent platform_embedded, AWS margin_discipline, the other 6 cost_plus'."""
    kinds = [(p.name, p.strategy.kind) for p in config.providers]
    common, n = collections.Counter(kind for _, kind in kinds).most_common(1)[0]
    if n < 3:
        return ", ".join(f"{name} {kind}" for name, kind in kinds)
    named = [f"{name} {kind}" for name, kind in kinds if kind != common]
    return ", ".join([*named, f"the other {n} {common}" if named else f"all {common}"])


def _changed(c: Controls) -> str:
    """The settings that change the preset (beyond seed and enterprises): 'Alibaba harvest_quarter 2027Q1 (step 6)'."""
    settings = c.settings()
    extra = [f"{k} {v}" for k, v in settings.items() if k not in ("preset", "seed", "enterprises")]
    return "; ".join(extra) or "nothing"
