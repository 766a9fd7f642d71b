"""Estimator interface and registry (``create("sqnr_global")``, ``available()``)."""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from mixprec.quant.calibrate import CalibrationStats
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit

Progress = Callable[[int], None]
"""Called with a number of finished work items (for a progress bar)."""


@dataclass
class Scores:
    """What an estimator returns.

    Attributes:
        matrix: ``matrix[i][j]``: score of unit ``i`` under candidate ``j``.
        token_scores: unit -> candidate label -> per-token scores (patch-wise methods).
        settings: method settings worth recording in the provenance.
    """

    matrix: list[list[float]]
    token_scores: dict[str, dict[str, tuple[float, ...]]] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)


class Estimator(ABC):
    """A sensitivity method: scores every (unit, candidate) pair of a model.

    Subclasses set ``name`` and implement :meth:`score`; :func:`estimate` does the rest
    (validation, calibration, non-finite checks, provenance).
    """

    name: str = ""

    @abstractmethod
    def work(self, units: Sequence[Unit], candidates: Sequence[QuantSpec], images: int) -> int:
        """Number of progress steps :meth:`score` reports for ``images`` calibration images."""

    @abstractmethod
    def score(self, model: nn.Module, units: Sequence[Unit], candidates: Sequence[QuantSpec],
              calib: torch.Tensor, stats: CalibrationStats, seed: int,
              progress: Progress) -> Scores:
        """Score every unit under every candidate.

        Args:
            model: the float model in eval mode; it must be left as it was found.
            units: the units to score.
            candidates: the candidate specs (none all-float).
            calib: calibration images.
            stats: calibration statistics of every unit's quantization points.
            seed: seed of any sampling the method does.
            progress: called as work items finish.
        """


class ProbedEstimator(Estimator):
    """An estimator that makes ``probes`` backward passes per calibration batch.

    Args:
        probes: backward passes (sampled labels or Hutchinson probes) per batch.
        batch_size: images per pass.
    """

    def __init__(self, probes: int = 4, batch_size: int = 64) -> None:
        if probes < 1:
            raise ValueError(f"probes={probes} must be at least 1")
        self.probes = probes
        self.batch_size = batch_size

    def work(self, units: Sequence[Unit], candidates: Sequence[QuantSpec], images: int) -> int:
        return math.ceil(images / self.batch_size)


_BUILTIN = {
    "sqnr_local": "mixprec.sensitivity.sqnr_local:SqnrLocal",
    "sqnr_global": "mixprec.sensitivity.sqnr_global:SqnrGlobal",
    "patch_global": "mixprec.sensitivity.patch_global:PatchGlobal",
    "hessian": "mixprec.sensitivity.hessian:Hessian",
}
_registry: dict[str, str | type[Estimator]] = dict(_BUILTIN)


def register(name: str, factory: type[Estimator]) -> None:
    """Add an estimator class under ``name`` (an existing name is an error)."""
    if name in _registry:
        raise ValueError(f"sensitivity method {name!r} is already registered")
    _registry[name] = factory


def unregister(name: str) -> None:
    """Remove a method added with :func:`register` (built-ins cannot be removed)."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in sensitivity method")
    _registry.pop(name, None)


def available() -> list[str]:
    """Registered method names, sorted."""
    return sorted(_registry)


def create(name: str, **kwargs: object) -> Estimator:
    """Instantiate the estimator registered as ``name`` with its settings.

    Raises:
        ValueError: unknown name (the known ones are listed).
    """
    if name not in _registry:
        raise ValueError(f"unknown sensitivity method {name!r}; available: {available()}")
    factory = _registry[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(**kwargs)
