"""The plans a measured table is fitted to, and those held out to check it.

* **uniform**: every unit in one candidate (where its kind has it; float32 elsewhere);
* **one class**: one shape class in one choice, the rest float32 (the old differential
  measurement, now one design point among others);
* **mixes**: random mixed plans, spread over the whole latency range (:func:`random_mix`);
* **held out**: more random mixes, never fitted: the table's own fidelity figures.

Plans are drawn from seeded generators, so an interrupted measurement finds the same plans
again (and their timings in the cache).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from mixprec.cost_models.table import FLOAT32
from mixprec.cost_models.terms import CostTerms
from mixprec.quant.plan import Plan
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit

HELD_OUT = 20
"""Random mixes held out of every fit."""
HELD_OUT_SEED = 7919
"""Seed of the held-out mixes (distinct from the fitted mixes' seeds)."""


@dataclass(frozen=True)
class DesignedPlan:
    """A plan of the design and its role (``uniform``, ``one class``, ``mix``,
    ``held out``)."""

    role: str
    plan: Plan


def random_mix(units: Sequence[Unit], specs_by_kind: dict[str, list[QuantSpec]],
               rng: random.Random) -> Plan:
    """A random mixed plan: a mixing probability ``p`` is drawn, every unit starts in one
    random spec that all unit kinds have, and each unit, with probability ``p``, takes a
    random spec of its kind instead."""
    kinds = {u.kind for u in units}
    common = [s for s in specs_by_kind[next(iter(sorted(kinds)))]
              if all(s in specs_by_kind[k] for k in kinds)] or [FLOAT32]
    p = rng.random()
    base = Plan.uniform(units, rng.choice(common))
    return base.replace({u.name: rng.choice(specs_by_kind[u.kind]) for u in units
                         if rng.random() < p})


def random_mixes(units: Sequence[Unit], specs_by_kind: dict[str, list[QuantSpec]],
                 count: int, seed: int) -> list[Plan]:
    """``count`` random mixes from one seeded generator."""
    rng = random.Random(seed)
    return [random_mix(units, specs_by_kind, rng) for _ in range(count)]


def design(terms: CostTerms, units: Sequence[Unit], mixes: int, seed: int = 0
           ) -> list[DesignedPlan]:
    """The fitted plans of a measurement: uniform, one class at a time, ``mixes`` random
    mixes (each plan once, float32 left out: it is every block's reference); then
    :data:`HELD_OUT` held-out mixes that are none of those."""
    float32 = Plan.uniform(units, FLOAT32)
    specs = terms.specs_by_kind
    found: list[DesignedPlan] = []
    for spec in dict.fromkeys(s for v in specs.values() for s in v if s != FLOAT32):
        found.append(DesignedPlan("uniform", Plan.uniform(units, FLOAT32).replace(
            {u.name: spec for u in units if spec in specs[u.kind]})))
    for term in terms.entry_terms():
        found.append(DesignedPlan("one class", terms.class_plan(term.producer, term.spec,
                                                                term.spec2, float32)))
    found += [DesignedPlan("mix", p) for p in random_mixes(units, specs, mixes, seed)]
    unique: dict[Plan, DesignedPlan] = {}
    for item in found:
        if item.plan != float32:
            unique.setdefault(item.plan, item)
    rng = random.Random(HELD_OUT_SEED)
    held: list[Plan] = []
    for _ in range(100 * HELD_OUT):
        if len(held) == HELD_OUT:
            break
        plan = random_mix(units, specs, rng)
        if plan != float32 and plan not in unique and plan not in held:
            held.append(plan)
    return list(unique.values()) + [DesignedPlan("held out", p) for p in held]
