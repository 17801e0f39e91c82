"""The dashboard's summary card: the quarter, the settings in effect, who leads, and a table per provider.

The table is :func:`cloudwar.results.summary_table` (what ``cloudwar run`` prints), restricted to
the charted markets; its colour swatches are the key to every chart. Nothing here imports Solara.
"""

from __future__ import annotations

import collections
from html import escape

import pandas as pd
from matplotlib.colors import to_hex

from cloudwar import plots
from cloudwar.dashboard.charts import chart_markets, session_colours
from cloudwar.dashboard.controls import Controls
from cloudwar.dashboard.session import MarketSession
from cloudwar.model.market import CloudMarket
from cloudwar.results import share_column
from cloudwar.results import summary_table as results_summary
from cloudwar.scenario import Scenario

#: The columns of results.summary_table the card shows besides the market shares, with their headings.
TOTALS = {"operating margin": "op. margin", "cum. FCF (USD bn)": "cum. FCF, USD bn"}


def _percent(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.1%}"


def summary_table(session: MarketSession) -> pd.DataFrame:
    """This quarter per provider: revenue share of each charted market ('China AI share', fraction),
    operating margin (fraction) and cumulative FCF (USD bn), from :func:`cloudwar.results.summary_table`.

    Empty (no values) before the first quarter.
    """
    market = session.market
    assert market is not None
    shares = {share_column(*m): f"{plots.market_label(*m)} share" for m in chart_markets(market.config)}
    columns = [*shares, *TOTALS]
    index = pd.Index(market.provider_names, name="provider")
    if session.quarter == 0:
        table = pd.DataFrame(index=index, columns=columns, dtype=float)
    else:
        table = results_summary(session.results()).reindex(index=index, columns=columns)
    return table.rename(columns=shares)


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
    when = f" ({calendar_quarter(config.start, quarter)})" if quarter else ""
    parts = [
        f'<h3 class="cloudwar-quarter">Quarter {quarter} of {config.quarters}{when}</h3>',
        f"<p>Preset <b>{escape(config.name)}</b>, seed {c.seed}, {market.population.n:,} enterprises; "
        f"switching cost {config.enterprise.switching_cost:.2f}, network weight {config.choice.network_weight:.2f}"
        f"{_alibaba_settings(c, market)}.</p>",
        f'<p class="cloudwar-strategies">Strategies: {escape(_strategies(config))}.</p>',
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
    colours = session_colours(session)
    head = "".join(f"<th>{escape(TOTALS.get(col, col))}</th>" for col in ["provider", *table.columns])
    rows = []
    for name, row in table.iterrows():
        swatch = f'<span class="cloudwar-swatch" style="background:{to_hex(colours[name])}"></span>'
        cells = [_percent(v) if not col.startswith("cum.") else _bn(v) for col, v in row.items()]
        rows.append(f"<tr><td>{swatch}{escape(str(name))}</td>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    parts.append(f'<table class="cloudwar-table"><tr>{head}</tr>{"".join(rows)}</table>')
    return "\n".join(parts)


def _bn(value: float) -> str:
    return "" if pd.isna(value) else f"{value:,.1f}"


def _strategies(config: Scenario) -> str:
    """'Alibaba share_first, Tencent platform_embedded, AWS margin_discipline, the other 6 cost_plus'."""
    kinds = [(p.name, p.strategy.kind) for p in config.providers]
    common, n = collections.Counter(kind for _, kind in kinds).most_common(1)[0]
    if n < 3:
        return ", ".join(f"{name} {kind}" for name, kind in kinds)
    named = [f"{name} {kind}" for name, kind in kinds if kind != common]
    return ", ".join([*named, f"the other {n} {common}" if named else f"all {common}"])


def _alibaba_settings(c: Controls, market: CloudMarket) -> str:
    if "Alibaba" not in market.provider_names:
        return ""
    text = f"; Alibaba prices x{c.alibaba_price_level:.2f}"
    if c.alibaba_capex_plan is not None:
        text += f", capex {c.alibaba_capex_plan:g}x the RMB 380bn plan"
    return text


def calendar_quarter(start: str, quarter: int) -> str:
    """Calendar label of model quarter ``quarter`` (1 = the scenario's start), e.g. '2026Q2'."""
    try:
        year, q = int(start[:4]), int(start[-1])
    except ValueError:
        return f"quarter {quarter}"
    index = year * 4 + (q - 1) + quarter - 1
    return f"{index // 4}Q{index % 4 + 1}"
