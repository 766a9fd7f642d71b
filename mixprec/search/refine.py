"""Refining an exact front with measured error: the study a search starts, and the workers
that join it from other processes or machines."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from torch import nn

from mixprec import models
from mixprec.quant.calibrate import calibration_hash
from mixprec.quant.inputs import ModelInputs, first_samples
from mixprec.quant.units import UnitList, discover_units
from mixprec.search.accuracy import calibration_images, plan_error
from mixprec.search.pareto import FrontChoice, spread
from mixprec.search.problem import SearchProblem
from mixprec.search.study import open_storage, storage_url
from mixprec.search.trials import (
    SETTINGS_ATTR,
    Limits,
    RefinedPoint,
    create_or_resume,
    default_study_name,
    optimize,
    refined_points,
)
from mixprec.sensitivity.estimate import weights_digest

logger = logging.getLogger(__name__)

TRIALS_ATTR = "mixprec_trials"
"""The study user attribute holding how many completed trials it is to have."""


@dataclass(frozen=True)
class Refinement:
    """A finished refinement: where its study is and what its trials found."""

    study_name: str
    storage: str
    error_measure: str
    points: list[RefinedPoint]

    def best(self) -> RefinedPoint:
        """The least measured error (then the fastest) among the points (all keep the
        limits)."""
        if not self.points:
            raise ValueError(f"no trial of study {self.study_name!r} kept the limits")
        return min(self.points, key=lambda p: (p.measured_error, p.latency_ms))


def refine(model: nn.Module, name: str, units: UnitList, calib: ModelInputs,
           problem: SearchProblem, front: list[FrontChoice], limits: Limits, *, trials: int,
           storage: str | Path | None, study_name: str | None, eval_fn: Callable | None,
           seed: int, context: dict[str, Any]) -> Refinement:
    """Run (or resume) the study until it holds ``trials`` completed trials, seeded with
    up to ``trials // 2`` plans spread along the part of the exact ``front`` within the
    limits.

    ``context`` (device, runtime, batch) is stored with the study for workers.
    """
    if trials < 1:
        raise ValueError(f"refine_trials must be >= 1, got {trials}")
    measure, error_of = plan_error(model, name, units, calib, eval_fn)
    settings = {**context, "model": name, "weights": weights_digest(model),
                "calib": calibration_hash(calib), "error": measure,
                "custom_eval": eval_fn is not None, "limits": asdict(limits), "seed": seed}
    study_name = study_name or default_study_name(name or units.model_id[:12],
                                                  context["device"], context["runtime"],
                                                  context["batch"], settings)
    url = storage_url(storage, study_name)
    within = [p.choice for p in front
              if all(v <= 0 for v in limits.excess(problem, p.choice).values())]
    seeds = spread(within, max(1, trials // 2))
    study = create_or_resume(url, study_name, problem, settings, seeds, seed)
    study.set_user_attr(TRIALS_ATTR, trials)
    logger.info("study %s (%s): %d trials", study_name, url, trials)
    optimize(study, problem, error_of, limits, trials)
    return Refinement(study_name, url, measure, refined_points(study, problem))


def join(storage: str | Path, study_name: str, *, calib: ModelInputs | None = None,
         weights: str | Path | None = None, seed: int | None = None) -> Refinement:
    """Work on a running study from this process until it holds its trials.

    The model is loaded by the name the study stores (``weights``: its state dict), the
    calibration images are the embedded model's or ``calib``; both must be those the study
    was started with. ``seed`` seeds this worker's sampler (None: random, so that workers
    do not all propose the same plans).

    Raises:
        ValueError: no such study, or one that this process cannot reproduce.
    """
    url = storage_url(storage, study_name)
    try:
        stored = optuna.load_study(study_name=study_name, storage=open_storage(url))
    except KeyError:
        raise ValueError(f"no study {study_name!r} in {url}") from None
    settings = dict(stored.user_attrs.get(SETTINGS_ATTR) or {})
    if not settings:
        raise ValueError(f"study {study_name!r} in {url} was not started by mixprec search")
    if not settings["model"]:
        raise ValueError(f"study {study_name!r} was started from an in-memory model: workers "
                         "need a model name (mnist-vit, a timm name)")
    if settings["custom_eval"]:
        raise ValueError(f"study {study_name!r} measures error with a Python eval_fn; join "
                         "it from Python with the same function")
    model = models.load(settings["model"], weights=weights).eval()
    if weights_digest(model) != settings["weights"]:
        raise ValueError(f"the weights of {settings['model']} here differ from the study's "
                         "(pass --weights with the file the study was started with)")
    calib = calibration_images(settings["model"], model, calib)
    if calibration_hash(calib) != settings["calib"]:
        raise ValueError("the calibration images differ from the study's")
    problem = SearchProblem.from_dict(settings.pop("problem"))
    units = discover_units(model, first_samples(calib, 1))
    limits = Limits(**settings["limits"])
    study = create_or_resume(url, study_name, problem, settings, [], seed)
    _, error_of = plan_error(model, settings["model"], units, calib, None)
    optimize(study, problem, error_of, limits, int(study.user_attrs[TRIALS_ATTR]))
    return Refinement(study_name, url, settings["error"], refined_points(study, problem))
