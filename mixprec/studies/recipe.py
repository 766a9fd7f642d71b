"""Study recipes: TOML files shipped in ``mixprec/studies/recipes`` that name a model, a
device and the plans to compare."""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RECIPES_DIR = Path(__file__).with_name("recipes")
COMPARABLE = ("fp32", "int8 static", "int8 dynamic", "int8 dynamic affine", "int4 weight-only",
              "hq", "searched")
"""What a recipe may compare: the uniform baselines, Hybrid Quantization, searched plans."""


@dataclass(frozen=True)
class Recipe:
    """One study.

    Attributes:
        name: the file's stem (``mixprec study run NAME``).
        title: one line.
        description: what it compares and how.
        model: ``mnist-vit`` or a timm name.
        device: ``cpu`` (deployed and measured here) or a target (its latency table).
        compare: plans compared (:data:`COMPARABLE`).
        budgets: searched plans: latency budgets as fractions of the float32 plan's
            predicted latency.
        batch: images per call.
        runtime: the CPU runtime (None: the faster one here).
        calib_size: calibration images.
        eval_size: images evaluated.
        synthetic_images: without ``--data`` for a non-embedded model: this many seeded
            random images (accuracy becomes the output SQNR against the float model).
        hq_tolerance_db: Hybrid Quantization's SQNR tolerance.
    """

    name: str
    title: str
    description: str
    model: str
    device: str
    compare: tuple[str, ...]
    budgets: tuple[float, ...] = ()
    batch: int = 1
    runtime: str | None = None
    calib_size: int = 256
    eval_size: int = 1000
    synthetic_images: int = 64
    hq_tolerance_db: float = 3.0


def recipe_names() -> list[str]:
    """The shipped recipes' names."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A shipped recipe by name, or a recipe file.

    Raises:
        LookupError: no such recipe (naming the shipped ones).
        ValueError: the file is not valid TOML or has unknown / missing / bad fields.
    """
    path = Path(name_or_path)
    if not path.suffix == ".toml":
        path = RECIPES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise LookupError(f"no study recipe {name_or_path!r}; shipped: "
                          f"{', '.join(recipe_names())}")
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from None
    known = {f.name for f in fields(Recipe)} - {"name"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {unknown}; known: {sorted(known)}")
    try:
        recipe = Recipe(name=path.stem, **{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in data.items()})
    except TypeError as err:
        raise ValueError(f"{path}: {err}") from None
    bad = [c for c in recipe.compare if c not in COMPARABLE]
    if bad:
        raise ValueError(f"{path}: cannot compare {bad}; choose from {COMPARABLE}")
    if "searched" in recipe.compare and not recipe.budgets:
        raise ValueError(f"{path}: 'searched' needs budgets (fractions of float32 latency)")
    if any(not 0 < b <= 1.5 for b in recipe.budgets):
        raise ValueError(f"{path}: budgets are fractions of the float32 latency in (0, 1.5]")
    return recipe
