"""PNG figures of a run (matplotlib, no display needed): the front per device, the plan's
unit map, predicted against measured latency and accuracy."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from mixprec.report.run_folder import RunFolder  # noqa: E402
from mixprec.report.unit_map import unit_map  # noqa: E402


def write_figures(run: RunFolder, folder: Path) -> list[Path]:
    """Write ``front-<device>.png`` for every device, ``unit-map.png`` and, when the run
    measured deployed plans, ``predicted-vs-measured.png`` into ``folder``; return them."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [_front_png(run, device, folder / f"front-{device}.png")
               for device in run.devices]
    written.append(_unit_map_png(run, folder / "unit-map.png"))
    if run.measured:
        written.append(_measured_png(run, folder / "predicted-vs-measured.png"))
    return written


def _front_png(run: RunFolder, device: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    front = run.fronts[device]
    ax.step([p["latency_ms"] for p in front], [p["error"] for p in front], where="post",
            marker="o", markersize=3, label=f"Pareto front ({len(front)} plans)")
    for name, point in run.baselines.get(device, {}).items():
        ax.scatter(point["latency_ms"], point["error"], marker="s", zorder=3)
        ax.annotate(name, (point["latency_ms"], point["error"]), textcoords="offset points",
                    xytext=(5, 5), fontsize=8)
    if device == run.summary["device"]:
        ax.scatter(run.summary["latency_ms"], run.summary["error"], marker="*", s=180,
                   color="red", zorder=4, label="chosen plan")
        if run.summary.get("budget_ms"):
            ax.axvline(run.summary["budget_ms"], color="grey", linestyle="--", label="budget")
    table = run.tables[device]
    ax.set_xlabel(f"predicted latency, ms per call of {table.batch} ({table.source} table)")
    ax.set_ylabel("predicted error (sensitivity sum)")
    ax.set_title(f"{device} ({table.runtime})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _unit_map_png(run: RunFolder, path: Path) -> Path:
    grid = unit_map(run.plan)
    labels = sorted({label for row in grid.labels for label in row if label})
    values = [[labels.index(label) if label else float("nan") for label in row]
              for row in grid.labels]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(grid.blocks) + 3),
                                    0.45 * len(grid.roles) + 2))
    cmap = plt.get_cmap("tab10", max(len(labels), 1))
    ax.imshow(values, cmap=cmap, vmin=-0.5, vmax=len(labels) - 0.5, aspect="auto")
    ax.set_xticks(range(len(grid.blocks)), grid.blocks, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(grid.roles)), grid.roles, fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(len(labels))]
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("chosen plan: spec of every unit")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _measured_png(run: RunFolder, path: Path) -> Path:
    rows = [r for r in run.measured if r["predicted_ms"] is not None]  # a peer has none
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    predicted = [r["predicted_ms"] for r in rows]
    measured = [r["latency_ms"] for r in rows]
    left.scatter(predicted, measured)
    for r in rows:
        left.annotate(r["name"], (r["predicted_ms"], r["latency_ms"]), fontsize=7,
                      textcoords="offset points", xytext=(4, 3))
    low, high = min(predicted + measured), max(predicted + measured)
    left.plot([low, high], [low, high], color="grey", linestyle="--", label="measured = predicted")
    left.set_xlabel("predicted ms")
    left.set_ylabel("measured ms (deployed, median)")
    left.legend(fontsize=8)
    with_top1 = [r for r in rows if r["top1"] is not None]
    right.scatter([r["predicted_error"] for r in with_top1], [r["top1"] for r in with_top1])
    for r in with_top1:
        right.annotate(r["name"], (r["predicted_error"], r["top1"]), fontsize=7,
                       textcoords="offset points", xytext=(4, 3))
    right.set_xlabel("predicted error (sensitivity sum)")
    right.set_ylabel("top-1 of the deployed model")
    fig.suptitle(f"predicted against measured ({rows[0]['runtime']} on this CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
