"""The live dashboard: a Mesa SolaraViz page that steps a :class:`~cloudwar.model.market.CloudMarket`.

Start it with ``cloudwar serve`` (or ``solara run cloudwar.dashboard.app``). The page shows

* controls (sidebar): scenario preset, seed, number of enterprises, Alibaba's price level and
  capex plan, switching cost and network-effect strength, and each named provider's strategy;
  pressing **Reset** builds a new model from them;
* a summary card: the quarter, the settings in effect, who leads, and a table of shares, margins
  and cumulative free cash flow whose colour swatches are the key to every chart;
* charts (matplotlib PNGs, drawn once per quarter) that follow the model: revenue share in China
  AI and in global cloud, operating margin with the 30% "AWS model" line, prices in the same two
  markets, capacity utilisation and cumulative free cash flow; and a sample of the enterprise
  network (six neighbourhoods, 300 enterprises, laid out once per model) coloured by AI provider.

Each browser session gets its own model (:func:`Page` creates it per session), so one user's
steps never move another's. A control combination the scenario schema rejects shows its one-line
message in the page instead of a model; so does an error while stepping.

This module is the only one of the dashboard that imports Solara: it holds the page and its
components. The rest draws on modules that do not:

* :mod:`cloudwar.dashboard.controls`: :class:`~cloudwar.dashboard.controls.Controls` (the
  sidebar's values, checked, as scenario overrides) and the sidebar's description;
* :mod:`cloudwar.dashboard.session`: :class:`~cloudwar.dashboard.session.MarketSession`, the
  per-session mesa.Model that SolaraViz steps and resets;
* :mod:`cloudwar.dashboard.charts`: the charts, drawn through the panels of :mod:`cloudwar.plots`
  (the same panels as ``cloudwar run``'s figure);
* :mod:`cloudwar.dashboard.summary`: the summary card, from :func:`cloudwar.results.summary_table`.

What the controls mean (applied as scenario overrides, see
:meth:`~cloudwar.dashboard.controls.Controls.overrides`):

========================  =====================================================================
control                   effect
========================  =====================================================================
preset                    the shipped scenario the model starts from
seed                      the model's random seed (a whole number >= 0)
enterprises               ``enterprises``: simulated enterprises
Alibaba price level       multiplies every starting price of Alibaba (each product and region)
Alibaba capex plan        ``preset's rule`` keeps the preset's capex rule; a multiple ``m`` makes
                          Alibaba commit to ``m`` x its announced plan, RMB 380bn over three years
                          (facts.md): a playbook with a ``capex_plan`` (share_first) gets
                          ``capex_plan = m x 380e9`` RMB; any other strategy spends it evenly,
                          ``capex_rule = "fixed"``, ``capex = m x 380e9 / 12 / rmb_per_usd`` USD
                          per quarter
switching cost            multiplies ``enterprise.switching_cost`` (mean, utility units)
network effect            multiplies ``choice.network_weight`` (utility per neighbour share)
<provider> strategy       ``preset's`` keeps it; a kind from ``cloudwar.strategies.REGISTRY``
                          replaces it, keeping the preset's parameters the new kind accepts
========================  =====================================================================

Multipliers at 1 and "preset's" choices leave the preset exactly as shipped, so the default page
runs the same model as ``cloudwar run --scenario baseline --set enterprises=3000 --seed 0``.
"""

from __future__ import annotations

from collections.abc import Callable

import solara
from mesa.visualization import SolaraViz

from cloudwar.dashboard.charts import CHARTS
from cloudwar.dashboard.controls import model_params
from cloudwar.dashboard.session import MarketSession
from cloudwar.dashboard.summary import summary_html


def summary_card(session: MarketSession) -> solara.Element:
    """The summary tile: an error message if there is one, then :func:`summary_html`."""
    with solara.Card(classes=["cloudwar-summary"]) as card:
        if session.error:
            solara.Error(session.error, classes=["cloudwar-error"])
        solara.HTML(tag="div", unsafe_innerHTML=summary_html(session), classes=["cloudwar-summary-body"])
    return card


def chart(name: str) -> Callable[[MarketSession], solara.Element]:
    """A SolaraViz component (a function of the model) showing chart ``name`` as a PNG."""

    def component(session: MarketSession) -> solara.Element:
        png = session.chart_png(name, CHARTS[name])
        return solara.Image(png, format="png", classes=["cloudwar-chart", f"cloudwar-chart-{name}"])

    component.__name__ = f"chart_{name.replace('-', '_')}"
    return component


COMPONENTS = [(summary_card, 0)] + [(chart(name), 0) for name in CHARTS]

CSS = """
.cloudwar-chart { width: 100% !important; height: auto !important; max-height: 100%; object-fit: contain; }
.cloudwar-summary { height: 100%; overflow-y: auto; }
.cloudwar-summary-body h3 { margin: 0 0 4px 0; }
.cloudwar-summary-body p { margin: 0 0 4px 0; font-size: 12px; line-height: 1.35; }
.cloudwar-table { border-collapse: collapse; font-size: 11.5px; }
.cloudwar-table th, .cloudwar-table td { padding: 0 6px; text-align: right; white-space: nowrap; }
.cloudwar-table th:first-child, .cloudwar-table td:first-child { text-align: left; }
.cloudwar-swatch { display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; }
"""


@solara.component
def Page() -> None:
    """The dashboard. One instance per browser session, so each session has its own model."""
    first = solara.use_memo(MarketSession, [])
    model = solara.use_reactive(first)
    params = solara.use_memo(model_params, [])
    solara.Style(CSS)
    SolaraViz(model, components=COMPONENTS, model_params=params, name="cloudwar: the AI cloud market")
