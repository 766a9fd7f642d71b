"""Uniform baseline plans on a search problem: what a user would try before searching.

Each baseline gives every unit one spec family where the unit can take it on the device
(its options), and float32 elsewhere: float32 everywhere, int8 weights with static
activations, int8 weights with dynamic activations (per token, and where the runtime offers it
per tensor as ONNX Runtime's ``quantize_dynamic`` does), and 4-bit weights with float
activations.
Where a runtime runs 8-bit activations inexactly here, its exact 7-bit form is the option
(the widest activation bits a unit offers are taken).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mixprec.cost_models.table import FLOAT32
from mixprec.quant.plan import Plan
from mixprec.quant.spec import QuantSpec
from mixprec.search.problem import Choice, SearchProblem

logger = logging.getLogger(__name__)

SpecFamily = Callable[[QuantSpec], bool]

BASELINES: dict[str, SpecFamily] = {
    "fp32": lambda s: s == FLOAT32,
    "int8 static": lambda s: s.weight_bits == 8 and s.act_mode == "static",
    "int8 dynamic": lambda s: s.weight_bits == 8 and s.act_mode == "dynamic",
    "int8 dynamic affine": lambda s: (s.weight_bits == 8 and s.act_mode == "dynamic"
                                      and s.act_granularity == "per_tensor"
                                      and not s.act_symmetric),
    "int4 weight-only": lambda s: s.weight_bits == 4 and s.act_mode == "none",
}
"""Baseline name -> the specs it gives a unit (the first such option with the widest
activations; float32 where a unit has none). ``int8 dynamic affine`` is ONNX Runtime
``quantize_dynamic``'s own format (one scale and zero point per tensor, fused into
DynamicQuantizeMatMul): the one-line peer's plan, deployed and simulated by mixprec, so that a
search can return it; where no unit offers it, it is float32 and left out."""


def uniform_choice(problem: SearchProblem, family: SpecFamily) -> Choice | None:
    """Every unit's first option in ``family`` with the widest activation bits (float32
    where none is), or None when that choice breaks a tie or a pair cannot run."""
    return family_choice(problem, [family] * len(problem.units))


def family_choice(problem: SearchProblem, families: list[SpecFamily]) -> Choice | None:
    """Unit ``i``'s first option in ``families[i]`` with the widest activation bits
    (float32 where none is), or None when that choice breaks a tie or a pair cannot run."""
    choice = []
    for options, family in zip(problem.options, families):
        matching = [i for i, s in enumerate(options) if family(s)]
        if matching:
            choice.append(max(matching, key=lambda i: (options[i].act_bits, -i)))
        else:
            choice.append(options.index(FLOAT32))
    found = tuple(choice)
    return found if problem.allows(found) else None


def snapped_choice(problem: SearchProblem, plan: Plan) -> Choice | None:
    """``plan`` on ``problem``: every unit's spec if it is an option, else the option of the
    same weight bits and activation mode with the widest activation bits (an 8-bit static
    spec becomes the runtime's exact 7-bit one), else float32."""
    def family(spec: QuantSpec) -> SpecFamily:
        return lambda s: s == spec or (s.weight_bits == spec.weight_bits
                                       and s.act_mode == spec.act_mode and not s.is_float)

    specs = [plan[name] if name in plan else FLOAT32 for name in problem.units]
    families = [(lambda s, spec=spec: s == spec) if spec in options else family(spec)
                for spec, options in zip(specs, problem.options)]
    return family_choice(problem, families)


def baseline_choices(problem: SearchProblem) -> dict[str, Choice]:
    """Baseline name -> its choice, for the baselines that differ from float32 on this
    problem (float32 itself always included) and can run."""
    found: dict[str, Choice] = {}
    for name, family in BASELINES.items():
        choice = uniform_choice(problem, family)
        if choice is None:
            logger.info("baseline %s cannot run on this problem (a tie or a pair)", name)
        elif name == "fp32" or choice not in found.values():
            found[name] = choice
    return found
