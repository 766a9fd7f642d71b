"""The run's report as one self-contained HTML page: interactive Plotly figures (plotly.js
inlined once, nothing fetched), the measured comparison and the tables' provenance."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from mixprec.quant.plan import Plan
from mixprec.report.run_folder import RunFolder
from mixprec.report.unit_map import plan_summary, unit_map
from mixprec.search.validate import fp32_ms

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 20px; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
code { background: #f3f3f3; padding: 1px 4px; }
"""


def render_page(run: RunFolder) -> str:
    """The whole HTML page of ``run``."""
    s = run.summary
    figures = [_front_figure(run, d) for d in run.devices] + [_map_figure(run.plan)]
    if run.measured:
        figures.append(_measured_figure(run.measured))
    divs = [fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"figure-{i}",
                        config={"displaylogo": False})
            for i, fig in enumerate(figures)]
    title = f"mixprec: {s.get('model', 'model')} on {s['device']}"
    budget = f"{s['budget_ms']:.4g} ms" if s.get("budget_ms") else "none"
    parts = [
        f"<h1>{_e(title)}</h1>",
        f"<p>Runtime <b>{_e(s['runtime'])}</b>, latency budget <b>{budget}</b>; the chosen "
        f"plan is predicted at <b>{s['latency_ms']:.4g} ms</b> with predicted error "
        f"{s['error']:.4g} ({_e(s.get('sensitivity', ''))} sensitivity). "
        f"{_e(plan_summary(run.plan))}.</p>",
    ]
    if run.measured:
        parts += ["<h2>Deployed and measured on this CPU</h2>",
                  _measured_table(run.measured, s.get("measured", {}).get("verified"))]
    parts += ["<h2>Pareto front per device</h2>", *divs[: len(run.devices)],
              "<h2>The chosen plan, unit by unit</h2>", divs[len(run.devices)]]
    if run.measured:
        parts += ["<h2>Predicted against measured</h2>", divs[-1]]
    parts += ["<h2>Latency tables used</h2>", _provenance_table(run)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def _front_figure(run: RunFolder, device: str) -> go.Figure:
    front = run.fronts[device]
    table = run.tables[device]
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[p["latency_ms"] for p in front], y=[p["error"] for p in front],
        mode="lines+markers", line_shape="hv", name=f"Pareto front ({len(front)} plans)",
        hovertext=[_point_text(k, p) for k, p in enumerate(front)], hoverinfo="text"))
    baselines = run.baselines.get(device, {})
    if baselines:
        fig.add_trace(go.Scatter(
            x=[p["latency_ms"] for p in baselines.values()],
            y=[p["error"] for p in baselines.values()], mode="markers+text",
            marker={"symbol": "square", "size": 10}, text=list(baselines),
            textposition="top right", name="uniform baselines",
            hovertext=[f"{name}<br>{_point_text(None, p)}" for name, p in baselines.items()],
            hoverinfo="text"))
    if device == run.summary["device"]:
        fig.add_trace(go.Scatter(
            x=[run.summary["latency_ms"]], y=[run.summary["error"]], mode="markers",
            marker={"symbol": "star", "size": 16, "color": "red"}, name="chosen plan",
            hovertext=[plan_summary(run.plan)], hoverinfo="text"))
        if run.summary.get("budget_ms"):
            fig.add_vline(x=run.summary["budget_ms"], line_dash="dash", line_color="grey",
                          annotation_text="budget")
    fig.update_layout(
        title=f"{device}: {table.runtime}, batch {table.batch} ({table.source} latency table)",
        xaxis_title="predicted latency (ms per call)",
        yaxis_title="predicted error (sensitivity sum)", height=460)
    return fig


def _point_text(rank: int | None, point: dict[str, Any]) -> str:
    head = "" if rank is None else f"front #{rank}: "
    plan = Plan.from_dict(point["plan"])
    return (f"{head}{point['latency_ms']:.4g} ms, error {point['error']:.4g}<br>"
            f"{_e(plan_summary(plan))}")


def _map_figure(plan: Plan) -> go.Figure:
    grid = unit_map(plan)
    labels = sorted({label for row in grid.labels for label in row if label})
    colors = qualitative.Plotly
    scale = []
    for i in range(len(labels)):
        color = colors[i % len(colors)]
        scale += [[i / len(labels), color], [(i + 1) / len(labels), color]]
    z = [[labels.index(label) if label else None for label in row] for row in grid.labels]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(grid.blocks), y=list(grid.roles), text=grid.labels,
        texttemplate="%{text}", customdata=grid.units, zmin=-0.5, zmax=len(labels) - 0.5,
        colorscale=scale or "Greys", showscale=False,
        hovertemplate="%{customdata}: %{text}<extra></extra>"))
    fig.update_layout(height=120 + 42 * len(grid.roles), yaxis_autorange="reversed",
                      title="spec of every unit (columns: blocks; rows: roles)")
    return fig


def _measured_figure(rows: Sequence[dict[str, Any]]) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "latency: predicted vs measured (ms)", "accuracy: predicted error vs measured top-1"))
    rows = [r for r in rows if r["predicted_ms"] is not None]  # a peer has no prediction
    names = [r["name"] for r in rows]
    predicted = [r["predicted_ms"] for r in rows]
    measured = [r["latency_ms"] for r in rows]
    fig.add_trace(go.Scatter(x=predicted, y=measured, mode="markers+text", text=names,
                             textposition="top right", name="latency"), 1, 1)
    low, high = min(predicted + measured), max(predicted + measured)
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="y = x",
                             line={"dash": "dash", "color": "grey"}), 1, 1)
    top1 = [r for r in rows if r["top1"] is not None]
    if top1:
        fig.add_trace(go.Scatter(x=[r["predicted_error"] for r in top1],
                                 y=[r["top1"] for r in top1], mode="markers+text",
                                 text=[r["name"] for r in top1], textposition="top right",
                                 name="top-1"), 1, 2)
    fig.update_xaxes(title_text="predicted ms", row=1, col=1)
    fig.update_yaxes(title_text="measured ms (deployed)", row=1, col=1)
    fig.update_xaxes(title_text="predicted error (sensitivity sum)", row=1, col=2)
    fig.update_yaxes(title_text="top-1 of the deployed model", row=1, col=2)
    fig.update_layout(height=460, showlegend=False)
    return fig


def _measured_table(rows: Sequence[dict[str, Any]], verified: dict[str, Any] | None) -> str:
    reference = fp32_ms(rows)
    chosen = verified["chosen"] if verified else None
    head = ("<tr><th>plan</th><th>role</th><th>predicted ms</th><th>measured ms</th>"
            "<th>vs fp32</th><th>top-1 deployed</th><th>output error vs float</th>"
            "<th>predicted error</th><th>output SQNR vs simulation</th></tr>")
    body = []
    for r in rows:
        speedup = f"{reference / r['latency_ms']:.2f}x" if reference else ""
        sqnr = (f"the same model as {_e(r['same_as'])}" if r.get("same_as") else
                "" if r["role"] == "peer" else
                "identical" if r["sqnr_db"] is None else f"{r['sqnr_db']:.1f} dB")
        name = f"<b>{_e(r['name'])} (chosen)</b>" if r["name"] == chosen else _e(r["name"])
        body.append(f"<tr><td>{name}</td><td>{_e(r['role'])}</td>"
                    f"<td>{_num(r['predicted_ms'], 3)}</td><td>{r['latency_ms']:.3f}</td>"
                    f"<td>{speedup}</td><td>{_num(r['top1'])}</td>"
                    f"<td>{_num(r['output_error'], 4, 'g')}</td>"
                    f"<td>{_num(r['predicted_error'], 4, 'g')}</td><td>{sqnr}</td></tr>")
    runtime = rows[0]["runtime"]
    parts = [f"<p>Each plan deployed with real kernels ({_e(runtime)} runtime), the runtime's "
             "one-line peer beside them, timed together against float32 in interleaved "
             "rounds on this machine (each plan's time: its median ratio to float32, "
             "corrected for the machine's speed of the moment, times float32's median).</p>",
             f"<table>{head}{''.join(body)}</table>"]
    if verified:
        parts.append(f"<p>Chosen by measurement: <b>{_e(verified['chosen'])}</b>, "
                     f"{_e(verified['rule'])}"
                     + (f"; the solver had chosen {_e(verified['predicted'])}"
                        if verified["replaced"] else "") + ".</p>")
        parts.append("<ul>" + "".join(f"<li>vs {_e(n)}: {_e(t)}</li>"
                                      for n, t in verified["relations"].items()) + "</ul>")
    return "".join(parts)


def _provenance_table(run: RunFolder) -> str:
    head = ("<tr><th>device</th><th>source</th><th>runtime</th><th>batch</th><th>threads</th>"
            "<th>machine / model</th><th>date</th><th>method</th><th>trust</th></tr>")
    body = []
    for device, table in run.tables.items():
        p = table.provenance
        machine = p.get("cpu") or "analytic device model (spec-sheet figures with citations)"
        if p.get("cpu_key") and p["cpu_key"] not in machine:
            machine += f" (key {p['cpu_key']})"
        body.append(f"<tr><td>{_e(device)}</td><td>{_e(table.source)}</td>"
                    f"<td>{_e(table.runtime)}</td><td>{table.batch}</td>"
                    f"<td>{table.threads}</td><td>{_e(machine)}</td>"
                    f"<td>{_e(str(p.get('date', '')))}</td>"
                    f"<td>{_e(str(p.get('method', '')))}</td>"
                    f"<td>{_e(table.trust_summary())}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _num(value: float | None, digits: int = 4, kind: str = "f") -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}{kind}}"


def _e(text: str) -> str:
    return html.escape(str(text))
