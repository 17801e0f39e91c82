"""The live dashboard: a Solara page that steps a :class:`~cloudwar.model.market.CloudMarket` with Mesa's controller.

Start it with ``cloudwar serve`` (or ``solara run cloudwar.dashboard.app``). The page shows

* a sidebar: Mesa's run controls (:func:`mesa.visualization.solara_viz.ModelController`: Reset,
  play, Step, with the play and render intervals), a **pending changes** marker, **Compare**
  (pin this run), **Export** (the tidy table as CSV, the charts as PNG, the equivalent
  ``cloudwar run`` command), the **scenario** controls of the chosen preset and each of its
  providers' **strategy** with its parameters and GPU supply, and the **events timeline** (the
  first of :data:`SIDEBAR_SECTIONS`); every control shows its value;
* a summary card: the quarter (and calendar quarter), the settings in effect, who leads, a table
  of shares, margins, cumulative free cash flow and NPV, and with a pinned run the paired
  difference of the headline numbers;
* charts (matplotlib PNGs, drawn once per quarter), each with its own legend and calendar axis:
  revenue share in China AI and in rest-of-world cloud, operating margin with the 30% "AWS model"
  line, prices in the same two markets (log scale where they span an order of magnitude),
  capacity utilisation and cumulative free cash flow, the pinned run dashed, the scenario's events
  dotted, and for the history preset history.csv's actual points (:mod:`cloudwar.dashboard.history`);
  and a sample of the enterprise network coloured by AI provider, with its key.

The page is built from Mesa's :class:`~mesa.visualization.solara_viz.ModelController` rather than
``SolaraViz`` itself: SolaraViz builds its model controls once per page, shows slider values only
while dragged and adds a "Page 0" tab and a "Time" card; this page needs controls that follow the
chosen preset and show their values, and state (the draft controls, the pinned run) that lives
across Reset. The model is still a mesa.Model (:class:`~cloudwar.dashboard.session.MarketSession`)
that the controller steps and rebuilds on Reset from the draft controls.

Each browser session gets its own model, draft and pinned run (:func:`Page` creates them per
session), so one user's steps never move another's. A control combination the scenario schema
rejects shows its one-line message in the page instead of a model; so does an error while stepping.

This module is the only one of the dashboard that imports Solara: it holds the page and its
components. The rest draws on modules that do not:

* :mod:`cloudwar.dashboard.controls`: :class:`~cloudwar.dashboard.controls.Controls` (the
  sidebar's values, checked, as scenario overrides and as a ``cloudwar run`` command) and the
  sidebar's description (:func:`~cloudwar.dashboard.controls.scenario_controls`,
  :func:`~cloudwar.dashboard.controls.strategy_controls`);
* :mod:`cloudwar.dashboard.session`: :class:`~cloudwar.dashboard.session.MarketSession`, the
  per-session mesa.Model, and :class:`~cloudwar.dashboard.session.PinnedRun`;
* :mod:`cloudwar.dashboard.charts`: the charts, drawn through the panels of :mod:`cloudwar.plots`
  (the same panels as ``cloudwar run``'s figure);
* :mod:`cloudwar.dashboard.summary`: the summary card and the comparison, from
  :func:`cloudwar.results.summary_table`.

Hooks: :data:`SIDEBAR_SECTIONS` are components the sidebar shows after the strategies, each
called with the draft inputs (a ``solara.Reactive[dict]``): the place for an events timeline
editor (its inputs read by :meth:`~cloudwar.dashboard.controls.Controls.from_inputs`, see
:mod:`cloudwar.dashboard.controls`). Marks on the charts (history points) go to
:data:`cloudwar.dashboard.charts.OVERLAYS`.

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
<provider> parameters     each declared parameter of the provider's strategy, shown with its
                          value, unit and accepted values; a quarter accepts ``2027Q1`` or a step
<provider> GPU supply     the provider field ``gpu_supply`` (max net capacity growth per quarter,
                          a fraction), all regions together and each region the preset limits
events timeline           the scenario's ``events``: the preset's, with events removed or added
                          (quarter, name, ``key = value`` lines), exported as ``--set events=[...]``
========================  =====================================================================

Multipliers at 1 and "preset's" choices leave the preset exactly as shipped, so the default page
runs the same model as ``cloudwar run --scenario baseline --set enterprises=3000 --seed 0``.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

import solara
from mesa.visualization.solara_viz import ModelController
from mesa.visualization.utils import update_counter

from cloudwar.dashboard import controls as ctl
from cloudwar.dashboard import history  # noqa: F401  (registers the history points overlay)
from cloudwar.dashboard.charts import CHARTS, charts_png
from cloudwar.dashboard.session import MarketSession, PinnedRun
from cloudwar.dashboard.summary import comparison_html, summary_html
from cloudwar.scenario import ScenarioError
from cloudwar.scenario.events import SUPPORTED as SUPPORTED_EVENT_KEYS

TITLE = "cloudwar: the AI cloud market"

#: Extra sidebar sections, each a component called with the draft inputs (see module docstring).
SIDEBAR_SECTIONS: list[Callable[[solara.Reactive[dict[str, Any]]], Any]] = []

CSS = """
.cloudwar-charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px; width: 100%; }
.cloudwar-chart { width: 100% !important; height: auto !important; }
.cloudwar-summary { width: 100%; margin-bottom: 8px; }
.cloudwar-summary-body h3 { margin: 0 0 4px 0; }
.cloudwar-summary-body h4 { margin: 8px 0 2px 0; }
.cloudwar-summary-body p { margin: 0 0 4px 0; font-size: 12px; line-height: 1.35; }
.cloudwar-table { border-collapse: collapse; font-size: 11.5px; margin-bottom: 4px; }
.cloudwar-table th, .cloudwar-table td { padding: 0 6px; text-align: right; white-space: nowrap; }
.cloudwar-table th:first-child, .cloudwar-table td:first-child { text-align: left; }
.cloudwar-swatch { display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; }
.cloudwar-value { min-width: 8em; text-align: right; font-weight: 600; font-size: 13px; white-space: nowrap; }
.cloudwar-note { font-size: 12px; color: #555; }
.cloudwar-command { white-space: pre-wrap; word-break: break-all; font-size: 11px; background: #f4f4f4;
  padding: 6px; margin: 4px 0; max-height: 12em; overflow-y: auto; }
.cloudwar-sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
.cloudwar-param { margin-bottom: 10px; }
.cloudwar-event { flex-wrap: nowrap; margin-bottom: 4px; }
.cloudwar-event-text { flex: 1 1 auto; min-width: 0; font-size: 12px; line-height: 1.3; overflow-wrap: anywhere; }
.cloudwar-event-text code { font-size: 10px !important; background: none !important; padding: 0 !important;
  color: #444 !important; overflow-wrap: anywhere; }
.cloudwar-param .v-text-field__details, .cloudwar-param .v-messages { height: auto; min-height: 0; overflow: visible; }
.cloudwar-param .v-messages__message { font-size: 10.5px; line-height: 1.25; }
"""


# --------------------------------------------------------------------------------------------
# Main area
# --------------------------------------------------------------------------------------------
@solara.component
def SummaryCard(session: MarketSession, pinned: PinnedRun | None) -> solara.Element:
    """The summary tile: an error message if there is one, then the summary and the comparison."""
    update_counter.get()  # redrawn after every step
    with solara.Card(classes=["cloudwar-summary"]) as card:
        if session.error:
            solara.Error(session.error, classes=["cloudwar-error"])
        body = summary_html(session) + comparison_html(session, pinned)
        solara.HTML(tag="div", unsafe_innerHTML=body, classes=["cloudwar-summary-body"])
    return card


@solara.component
def Chart(session: MarketSession, name: str, pinned: PinnedRun | None) -> solara.Element:
    """Chart ``name`` as a PNG, redrawn after every step."""
    update_counter.get()
    png = session.chart_png(name, CHARTS[name], pinned)
    with solara.Column(gap="0px", classes=["cloudwar-tile"]) as tile:
        solara.Image(png, format="png", classes=["cloudwar-chart", f"cloudwar-chart-{name}"])
        # What the picture shows, as text: for screen readers (and the browser tests), not for the eye.
        solara.Text(session.chart_text(name, pinned), classes=["cloudwar-sr-only", f"cloudwar-chart-text-{name}"])
    return tile


@solara.component
def Pending(session: MarketSession, draft: solara.Reactive[dict[str, Any]]) -> solara.Element | None:
    """The stale marker: what the changed controls will change, until Reset builds the model from them."""
    message = pending_message(session, draft.value)
    if message is None:
        return None
    return solara.Warning(message, classes=["cloudwar-stale"], dense=True)


def pending_message(session: MarketSession, inputs: dict[str, Any]) -> str | None:
    """'Pending changes (press Reset to apply): seed: 0 -> 7', or None when the model is up to date."""
    try:
        draft = ctl.Controls.from_inputs(inputs)
    except ScenarioError as err:
        return f"Pending changes are not valid yet: {err}"
    if session.controls is None:
        return None if inputs == session.inputs else "Pending changes: press Reset to build the model from them."
    differs = ctl.changes(session.controls, draft)
    if not differs:
        return None
    return "Pending changes, the charts show the run before them (press Reset to apply): " + "; ".join(differs)


# --------------------------------------------------------------------------------------------
# Sidebar
# --------------------------------------------------------------------------------------------
@solara.component
def ScenarioControls(draft: solara.Reactive[dict[str, Any]]) -> None:
    """The scenario controls of the draft's preset, each with its value shown beside it."""
    inputs = draft.value

    def setter(key: str) -> Callable[[Any], None]:
        def set_value(value: Any) -> None:
            if key == "preset":
                draft.set(ctl.for_preset(draft.value, value))
            else:
                draft.set({**draft.value, key: value})

        return set_value

    for c in ctl.scenario_controls(inputs.get("preset", ctl.DEFAULT_PRESET)):
        value = inputs.get(c.key, c.default)
        if c.widget == "select":
            solara.Select(c.label, values=list(c.values), value=value, on_value=setter(c.key))
        elif c.widget == "text":
            solara.InputText(c.label, value=str(value), on_value=setter(c.key), message=c.unit)
        else:
            slider = solara.SliderInt if c.widget == "int" else solara.SliderFloat
            with solara.Row(style={"align-items": "center"}, gap="4px"):
                slider(c.label, value=value, min=c.lo, max=c.hi, step=c.step, on_value=setter(c.key))
                solara.Text(c.show(value), classes=["cloudwar-value", f"cloudwar-value-{c.key}"])


@solara.component
def ProviderStrategy(draft: solara.Reactive[dict[str, Any]], preset: str, provider: str) -> None:
    """One provider's strategy kind and its declared parameters, each shown with its value."""
    inputs = draft.value
    kind_key = f"{ctl.STRATEGY_KEY}{provider}"
    kind = inputs.get(kind_key, ctl.PRESETS_OWN)
    start = ctl.preset_scenario(preset).start

    def set_kind(value: str) -> None:
        # Another kind has other parameters: the typed ones of the old kind go.
        kept = {k: v for k, v in draft.value.items() if ctl.input_provider(k) != provider}
        draft.set({**kept, kind_key: value})

    try:
        params = ctl.strategy_controls(preset, provider, kind)
    except ScenarioError as err:  # e.g. a kind that cannot be imported
        solara.Select(f"{provider} strategy", values=ctl.strategy_kinds(), value=kind, on_value=set_kind)
        solara.Error(str(err))
        return
    shown = kind if kind != ctl.PRESETS_OWN else f"{ctl.preset_kind(preset, provider)} (preset's)"
    supply = ctl.gpu_controls(preset, provider)
    edited = sum(1 for p in [*params, *supply] if p.key in inputs)
    summary = f"{provider}: {shown}" + (f", {edited} parameter{'s' * (edited > 1)} changed" if edited else "")
    with solara.Details(summary=summary):
        solara.Select(f"{provider} strategy", values=ctl.strategy_kinds(), value=kind, on_value=set_kind)
        for g in supply:
            GpuSupply(draft, preset, g)
        for p in params:
            text = str(inputs.get(p.key, p.text))
            set_param = _set_text(draft, p.key, p.text)
            classes = ["cloudwar-param", f"cloudwar-param-{slug(provider)}-{p.name}"]
            if p.choices is not None:
                solara.Select(p.name, values=list(p.choices), value=text, on_value=set_param, classes=classes)
                continue
            error: str | bool = False
            message = p.hint
            try:
                in_effect = ctl.preset_kind(preset, provider) if kind == ctl.PRESETS_OWN else kind
                value = ctl.parse_param(in_effect, p.name, text, start)
                if p.quarter and isinstance(value, int) and value > 0:
                    message = f"step {value} = {ctl.show_value(value, start)}; {p.hint}"
            except ScenarioError as err:
                error = str(err)
            solara.InputText(p.name, value=text, on_value=set_param, error=error, message=message, classes=classes)


def _set_text(draft: solara.Reactive[dict[str, Any]], key: str, shipped: str) -> Callable[[Any], None]:
    """A text field's setter: the typed text kept under ``key``, or dropped when it is the preset's."""

    def set_value(value: Any) -> None:
        new = {k: v for k, v in draft.value.items() if k != key}
        if str(value).strip() != shipped:  # typed back to the value it has: no change
            new[key] = value
        draft.set(new)

    return set_value


@solara.component
def GpuSupply(draft: solara.Reactive[dict[str, Any]], preset: str, g: ctl.GpuControl) -> None:
    """One GPU supply limit of a provider (the provider field ``gpu_supply``), its value shown with its unit."""
    text = str(draft.value.get(g.key, g.text))
    error: str | bool = False
    try:
        ctl.parse_gpu(g.provider, g.region, text, preset)
    except ScenarioError as err:
        error = str(err)
    classes = [
        "cloudwar-param",
        f"cloudwar-gpu-{slug(g.provider)}-{'all' if g.region == ctl.ALL_REGIONS else slug(g.region)}",
    ]
    message = f"{g.show(text)}; fraction (0.025 or 2.5%); empty = unlimited"
    solara.InputText(
        g.label, value=text, on_value=_set_text(draft, g.key, g.text), error=error, message=message, classes=classes
    )


def slug(name: str) -> str:
    """'Volcano Engine' -> 'volcano-engine' (CSS class names)."""
    return "-".join(name.lower().split())


@solara.component
def StrategyControls(draft: solara.Reactive[dict[str, Any]]) -> None:
    """One expandable section per provider of the draft's preset."""
    preset = draft.value.get("preset", ctl.DEFAULT_PRESET)
    try:
        names = ctl.preset_scenario(preset).provider_names
    except ScenarioError:
        return
    for name in names:
        ProviderStrategy(draft, preset, name)


@solara.component
def EventsEditor(draft: solara.Reactive[dict[str, Any]]) -> None:
    """The scenario's events timeline: the preset's events (e.g. history's), each removable, and a
    form to add one (quarter, name, one ``key = value`` a line with the keys of ``--set``). An added
    event is checked by the scenario's own event validation first (its one-line message shown here
    if it fails); the edited timeline is pending until Reset, and exported with the command."""
    at = solara.use_reactive("")
    name = solara.use_reactive("")
    keys = solara.use_reactive("")
    problem = solara.use_reactive(None)
    preset = draft.value.get("preset", ctl.DEFAULT_PRESET)
    try:
        shipped = ctl.preset_events(preset)
    except ScenarioError:
        return
    entries = list(draft.value.get(ctl.EVENTS_KEY, shipped))

    def set_entries(new: list[ctl.EventEntry]) -> None:
        rest = {k: v for k, v in draft.value.items() if k != ctl.EVENTS_KEY}
        draft.set(rest if new == shipped else {**rest, ctl.EVENTS_KEY: tuple(new)})

    def add() -> None:
        entry = ctl.EventEntry(at.value.strip(), name.value.strip(), keys.value)
        try:
            if not entry.name:
                raise ScenarioError("an event needs a name")
            ctl.parse_events_input(preset, [*entries, entry])
        except ScenarioError as err:
            problem.set(str(err))
            return
        problem.set(None)
        set_entries([*entries, entry])
        at.set("")
        name.set("")
        keys.set("")

    with solara.Card("Events timeline", classes=["cloudwar-events"]):
        if not entries:
            solara.Text(f"No events in {preset}: add one below.", classes=["cloudwar-note"])
        for i, e in enumerate(entries):
            lines = "".join(f"<br><code>{escape(line)}</code>" for line in e.keys.splitlines() if line.strip())
            with solara.Row(style={"align-items": "flex-start"}, gap="4px", classes=["cloudwar-event"]):
                solara.HTML(
                    tag="div",
                    unsafe_innerHTML=f"<b>{escape(e.at)}</b> {escape(e.name)}{lines}",
                    classes=["cloudwar-event-text"],
                )
                solara.Button(
                    "Remove",
                    on_click=lambda i=i: set_entries(entries[:i] + entries[i + 1 :]),
                    text=True,
                    small=True,
                    classes=[f"cloudwar-event-remove-{i}"],
                )
        solara.InputText(
            "Event quarter", value=at, continuous_update=True, message="calendar quarter, e.g. 2027Q1, or a model step"
        )
        solara.InputText("Event name", value=name, continuous_update=True, message="what happens (shown on the charts)")
        solara.InputTextArea(
            "Event keys",
            value=keys,
            rows=3,
            continuous_update=True,
            message="one key = value a line, keys as --set: " + SUPPORTED_EVENT_KEYS,
        )
        with solara.Row():
            solara.Button("Add event", on_click=add, color="primary", outlined=True)
            if ctl.EVENTS_KEY in draft.value:
                solara.Button("Preset's events", on_click=lambda: set_entries(shipped), outlined=True)
        if problem.value:
            solara.Error(problem.value, classes=["cloudwar-event-error"], dense=True)


SIDEBAR_SECTIONS.append(EventsEditor)


@solara.component
def CompareCard(session: MarketSession, pinned: solara.Reactive[PinnedRun | None]) -> None:
    """Pin this run (it is then drawn dashed and differenced in the summary) or drop the pinned one."""
    update_counter.get()
    with solara.Card("Compare"):
        with solara.Row():
            solara.Button(
                "Pin this run",
                on_click=lambda: pinned.set(session.pin()),
                disabled=session.pin() is None,
                color="primary",
                outlined=True,
            )
            solara.Button("Unpin", on_click=lambda: pinned.set(None), disabled=pinned.value is None, outlined=True)
        if pinned.value is None:
            solara.Text(
                "Pin a run, change the controls, Reset and step: the charts show both.", classes=["cloudwar-note"]
            )
        else:
            p = pinned.value
            solara.Text(
                f"Pinned: {p.controls.preset}, seed {p.controls.seed}, quarter {p.quarter} (dashed in the charts).",
                classes=["cloudwar-note", "cloudwar-pinned"],
            )


@solara.component
def ExportCard(session: MarketSession, pinned: PinnedRun | None) -> None:
    """The run's tidy table (CSV), the charts (PNG) and the ``cloudwar run`` command that reproduces the CSV."""
    update_counter.get()
    command = session.command()
    with solara.Card("Export"):
        if command is None:
            solara.Text(
                "Step the run first: then its table, charts and command can be exported.", classes=["cloudwar-note"]
            )
            return
        c = session.controls
        stem = f"cloudwar-{c.preset}-seed{c.seed}-q{session.quarter}"
        with solara.Row():
            solara.FileDownload(session.results_csv, filename=f"{stem}.csv", label="Table (CSV)", mime_type="text/csv")
            solara.FileDownload(
                lambda: charts_png(session, pinned), filename=f"{stem}.png", label="Charts (PNG)", mime_type="image/png"
            )
        solara.Text("The same run from the command line (writes the same results.csv):", classes=["cloudwar-note"])
        solara.HTML(
            tag="div",
            unsafe_innerHTML=(
                f'<pre class="cloudwar-command">{escape(command)}</pre>'
                '<button class="cloudwar-copy v-btn v-btn--outlined theme--light v-size--small" '
                'onclick="navigator.clipboard.writeText(this.previousElementSibling.innerText)'
                ".then(() => { this.innerText = 'Copied'; })\">Copy</button>"
            ),
        )


@solara.component
def Page() -> None:
    """The dashboard. One instance per browser session, so each session has its own model."""
    first = solara.use_memo(MarketSession, [])
    session = solara.use_reactive(first)
    draft = solara.use_reactive(solara.use_memo(ctl.default_inputs, []))
    pinned = solara.use_reactive(None)
    play_interval = solara.use_reactive(100)
    render_interval = solara.use_reactive(1)
    threads = solara.use_reactive(False)  # Mesa's controller reads it; quarters run in the play thread anyway
    solara.Style(CSS)
    with solara.AppBar():
        solara.AppBarTitle(TITLE)
    with solara.Sidebar(), solara.Column():
        with solara.Card("Run"):
            ModelController(
                session,
                model_parameters=draft,
                play_interval=play_interval,
                render_interval=render_interval,
                use_threads=threads,
            )
            with solara.Row(style={"align-items": "center"}, gap="4px"):
                solara.SliderInt("Play interval", value=play_interval, min=10, max=500, step=10)
                solara.Text(f"{play_interval.value} ms", classes=["cloudwar-value"])
            with solara.Row(style={"align-items": "center"}, gap="4px"):
                solara.SliderInt("Render interval", value=render_interval, min=1, max=40, step=1)
                solara.Text(
                    f"every {render_interval.value} quarter{'s' * (render_interval.value > 1)}",
                    classes=["cloudwar-value"],
                )
            solara.Text("Changed controls take effect on Reset.", classes=["cloudwar-note"])
            Pending(session.value, draft)
        CompareCard(session.value, pinned)
        ExportCard(session.value, pinned.value)
        with solara.Card("Scenario"):
            ScenarioControls(draft)
        with solara.Card("Strategies"):
            StrategyControls(draft)
        for section in SIDEBAR_SECTIONS:
            section(draft)
    with solara.Column(style={"width": "100%"}):
        Pending(session.value, draft)
        SummaryCard(session.value, pinned.value)
        with solara.Div(classes=["cloudwar-charts"]):
            for name in CHARTS:
                Chart(session.value, name, pinned.value)
