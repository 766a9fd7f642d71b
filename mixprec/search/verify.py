"""The measured choice: the solver's plan is a prediction; this step deploys it on this CPU
beside the front plans around it (several on each side), the uniform baselines and the
runtime's one-line peer, times them all together, and returns the best *measured* plan:

* with a latency budget, the most accurate plan measured within it (a budget given as a
  fraction of float32 applies to float32's measured latency);
* in ``max_drop`` mode, the fastest plan measured within the drop;
* otherwise the most accurate plan measured (ties: the faster).

Ties on accuracy go to the faster plan, so no plan of the run is faster and at least as
accurate as the one returned: it is never dominated by a plan or baseline measured beside
it. The timings then join the latency table's fit (the cache learns from every search).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from mixprec.cost_models.timing import TimingPolicy
from mixprec.quant.units import UnitList
from mixprec.search.result import FrontPoint
from mixprec.search.validate import (
    REFERENCE,
    Accuracy,
    Candidate,
    Measured,
    PlanTimed,
    Progress,
    measure_plans,
)

logger = logging.getLogger(__name__)

SIDE = 3
"""Front plans measured on each side of the solver's choice."""


@dataclass(frozen=True)
class Budget:
    """What "best" means for the measured choice.

    Attributes:
        ms: a latency budget in ms.
        fraction: a latency budget as a fraction of float32's measured latency.
        max_drop: the largest top-1 drop from float32 allowed (``max_drop`` mode).
    """

    ms: float | None = None
    fraction: float | None = None
    max_drop: float | None = None


@dataclass(frozen=True)
class Verification:
    """What the measured choice measured and decided.

    Attributes:
        rows: every plan, baseline and peer measured, with their figures.
        chosen: the name of the row returned.
        predicted: the name of the row the solver chose.
        rule: what "best" meant, in words (with the measured budget).
        relations: every baseline and peer (but the chosen one) -> how the chosen plan
            compares with it.
        dominated_by: rows that are faster and at least as accurate than the chosen one
            (only a peer can be, when it is none of the plans measured: mixprec returns
            plans).
        learned: timings added to the latency table's cache.
    """

    rows: list[Measured]
    chosen: str
    predicted: str
    rule: str
    relations: dict[str, str] = field(default_factory=dict)
    dominated_by: list[str] = field(default_factory=list)
    learned: int = 0

    @property
    def replaced(self) -> bool:
        """Whether the measurements chose another plan than the solver."""
        return self.chosen != self.predicted

    def row(self, name: str) -> Measured:
        """The row named ``name``."""
        return next(r for r in self.rows if r.name == name)

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        data = asdict(self)
        data["rows"] = [r.to_dict() for r in self.rows]
        data["replaced"] = self.replaced
        return data


def candidates_to_measure(solver: FrontPoint, baselines: Mapping[str, FrontPoint],
                          front: Sequence[FrontPoint], side: int = SIDE,
                          peer: tuple[str, Any] | None = None
                          ) -> tuple[dict[str, Candidate], str]:
    """(name -> what to measure, the name of the solver's plan among them): the baselines
    (float32 always, as :data:`REFERENCE`), the solver's plan, ``side`` front plans on each
    side of it (by predicted latency) and the peer. A plan is measured once, under its
    first name."""
    found: dict[str, Candidate] = {name: Candidate("baseline", point)
                                   for name, point in baselines.items()}
    if REFERENCE not in found:
        raise ValueError(f"the baselines must include the float32 plan {REFERENCE!r}")
    seen = {point.plan: name for name, point in baselines.items()}
    solver_name = seen.get(solver.plan)
    if solver_name is None:
        in_front = [k for k, p in enumerate(front) if p.plan == solver.plan]
        solver_name = f"front #{in_front[0]}" if in_front else "solver's choice"
        found[solver_name] = Candidate("front", solver)
        seen[solver.plan] = solver_name
    for k in _around(front, solver, side):
        if front[k].plan not in seen:
            found[f"front #{k}"] = Candidate("front", front[k])
            seen[front[k].plan] = f"front #{k}"
    if peer is not None:
        found[peer[0]] = Candidate("peer", peer=peer[1])
    return found, solver_name


def _around(front: Sequence[FrontPoint], point: FrontPoint, side: int) -> list[int]:
    """Indices of up to ``side`` front plans on each side of ``point``'s latency."""
    below = [k for k, p in enumerate(front) if p.latency_ms < point.latency_ms]
    above = [k for k, p in enumerate(front) if p.latency_ms > point.latency_ms]
    return below[-side:] + above[:side]


def best_measured(rows: Sequence[Measured], budget: Budget) -> tuple[Measured, str]:
    """(the best measured plan by ``budget``, the rule in words); peers are not plans and
    are never returned.

    Raises:
        ValueError: no float32 row, or ``max_drop`` without measured top-1.
    """
    plans = [r for r in rows if r.role != "peer"]
    reference = next((r for r in plans if r.name == REFERENCE), None)
    if reference is None:
        raise ValueError(f"the measured rows must include the float32 plan {REFERENCE!r}")
    if budget.max_drop is not None:
        if reference.top1 is None:
            raise ValueError("max_drop needs the measured top-1 of the deployed plans")
        within = [r for r in plans if r.top1 is not None
                  and reference.top1 - r.top1 <= budget.max_drop]
        best = min(within, key=lambda r: (r.latency_ms, -r.accuracy))
        return best, (f"the fastest plan measured within a top-1 drop of {budget.max_drop:g} "
                      f"from float32 ({reference.top1:.4f})")
    limit = budget.ms
    if budget.fraction is not None:
        limit = budget.fraction * reference.latency_ms
    if limit is None:
        best = max(plans, key=lambda r: (r.accuracy, -r.latency_ms))
        return best, "the most accurate plan measured (ties: the faster)"
    within = [r for r in plans if r.latency_ms <= limit]
    if not within:
        best = min(plans, key=lambda r: (r.latency_ms, -r.accuracy))
        return best, (f"no plan measured within the budget of {limit:.3f} ms: the fastest "
                      "one measured")
    best = max(within, key=lambda r: (r.accuracy, -r.latency_ms))
    return best, f"the most accurate plan measured within {limit:.3f} ms (ties: the faster)"


def dominates(a: Measured, b: Measured) -> bool:
    """Whether ``a`` is at least as fast and as accurate as ``b``, and better in one."""
    return (a.latency_ms <= b.latency_ms and a.accuracy >= b.accuracy
            and (a.latency_ms < b.latency_ms or a.accuracy > b.accuracy))


def relation(chosen: Measured, other: Measured) -> str:
    """How ``chosen`` compares with ``other``, in words (a peer that is one of the plans says
    which)."""
    if other.same_as == chosen.name:
        return "the same model as the chosen plan (equal outputs)"
    if other.same_as is not None:
        return f"the same model as {other.same_as} (equal outputs); " + relation(
            chosen, replace(other, same_as=None))
    speed = other.latency_ms / chosen.latency_ms
    if chosen.top1 is not None and other.top1 is not None:
        accuracy = f"top-1 {chosen.top1:.4f} vs {other.top1:.4f}"
    else:
        accuracy = f"output error {chosen.output_error:.3g} vs {other.output_error:.3g}"
    pace = f"{speed:.2f}x as fast"
    if dominates(chosen, other):
        return f"beaten: {pace}, {accuracy}"
    if dominates(other, chosen):
        return f"DOMINATES the chosen plan: chosen {pace}, {accuracy}"
    return f"trade-off: chosen {pace}, {accuracy}"


def verify_choice(model: nn.Module, units: UnitList, solver: FrontPoint,
                  baselines: Mapping[str, FrontPoint], front: Sequence[FrontPoint],
                  calib: torch.Tensor, runtime: str, budget: Budget,
                  accuracy: Accuracy | None, *, batch: int = 1, threads: int = 2,
                  side: int = SIDE, policy: TimingPolicy | None = None,
                  timing_images: torch.Tensor | None = None, peer: bool = True,
                  progress: Progress | None = None
                  ) -> tuple[FrontPoint, Verification, list[PlanTimed]]:
    """Measure the plans around the solver's choice and return the best measured one.

    Returns:
        (the chosen point, what was measured and decided, every plan timed against float32
        with its timing, for the latency table's fit).
    """
    from mixprec.deploy.peers import PEER_NAMES, build_peer

    one_liner = None
    if peer:
        x = (calib if timing_images is None else timing_images)[:batch]
        one_liner = (PEER_NAMES[runtime], build_peer(model, runtime, x, threads, calib))
    found, solver_name = candidates_to_measure(solver, baselines, front, side, one_liner)
    rows, learned = measure_plans(model, found, units, calib, runtime, accuracy, batch,
                                  threads, policy, timing_images, progress)
    best, rule = best_measured(rows, budget)
    others = [r for r in rows if r.name != best.name and r.role in ("baseline", "peer")]
    verification = Verification(
        rows, best.name, solver_name, rule, {r.name: relation(best, r) for r in others},
        [r.name for r in rows if dominates(r, best)])
    if verification.dominated_by:
        logger.warning("measured beside the chosen plan, %s run faster and at least as "
                       "accurately", ", ".join(verification.dominated_by))
    return found[best.name].point, verification, learned
