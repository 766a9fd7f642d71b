"""The per-unit map of a plan: units laid out as blocks (columns) by role (rows)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from mixprec.quant.plan import Plan

_BLOCK = re.compile(r"^(?P<block>.*\.\d+)\.(?P<role>[^\d].*)$")


@dataclass(frozen=True)
class UnitMap:
    """A plan as a grid.

    Attributes:
        blocks: column labels (``blocks.0``, ...; ``stem`` / ``head`` for units outside
            numbered blocks, before / after them).
        roles: row labels (``attn.qkv``, ``attn.qk``, ``mlp.fc1``, ...).
        labels: ``labels[r][c]``: the spec label of that cell's unit, or "" where none is.
        units: ``units[r][c]``: the unit's name, or "".
    """

    blocks: tuple[str, ...]
    roles: tuple[str, ...]
    labels: tuple[tuple[str, ...], ...]
    units: tuple[tuple[str, ...], ...]


def unit_map(plan: Plan) -> UnitMap:
    """Lay ``plan``'s units out by block and role; units outside numbered blocks are columns
    of their own (``stem`` before the first block, ``head`` after)."""
    cells: dict[tuple[str, str], str] = {}
    blocks: list[str] = []
    roles: list[str] = []
    seen_block = False
    for name in plan.names:
        match = _BLOCK.match(name)
        if match:
            block, role = match["block"], match["role"]
            seen_block = True
        else:
            block, role = ("head" if seen_block else "stem"), name
        blocks += [block] if block not in blocks else []
        roles += [role] if role not in roles else []
        cells[(role, block)] = name
    return UnitMap(
        tuple(blocks), tuple(roles),
        tuple(tuple(plan[cells[(r, b)]].label if (r, b) in cells else "" for b in blocks)
              for r in roles),
        tuple(tuple(cells.get((r, b), "") for b in blocks) for r in roles))


def plan_summary(plan: Plan) -> str:
    """How many units take each spec, most common first (``W8A8-static x18, ...``)."""
    counts = Counter(plan[n].label for n in plan.names)
    return ", ".join(f"{label} x{count}" for label, count in counts.most_common())
