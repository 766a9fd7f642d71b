"""Optuna refinement trials: a multi-objective study of (measured error, predicted latency).

The study searches the same space as the ILP (one categorical parameter per group of units
that share a latency term, over the joint options that can run), starts from the ILP front
(enqueued), keeps the budget, size and BOPs limits as constraints (``trial.set_constraint``)
and measures every trial's error on the fake-quantized model. Its settings and problem are
stored in the study, so a worker in another process or on another machine joins it with the
storage URL and study name alone; a study stopped mid-way resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from mixprec.quant.plan import Plan
from mixprec.search.pareto import joint_options, unit_groups
from mixprec.search.problem import Choice, SearchProblem
from mixprec.search.study import mark_worker, open_storage, retry_dead_trials

logger = logging.getLogger(__name__)

SETTINGS_ATTR = "mixprec"
"""The study user attribute holding its settings and problem."""
PREDICTED_ERROR_ATTR = "predicted_error"


class SearchSpace:
    """One categorical parameter per unit group: the labels of its runnable joint options."""

    def __init__(self, problem: SearchProblem) -> None:
        self.problem = problem
        self.groups = unit_groups(problem)
        self.names = ["+".join(problem.units[i] for i in members) for members in self.groups]
        self.combos = [joint_options(problem, members)[2] for members in self.groups]
        self.labels = [["+".join(problem.options[i][a].label for i, a in zip(members, combo))
                        for combo in combos]
                       for members, combos in zip(self.groups, self.combos)]

    def suggest(self, trial: optuna.Trial) -> Choice:
        """The choice ``trial`` samples."""
        return self.choice_of({name: trial.suggest_categorical(name, labels)
                               for name, labels in zip(self.names, self.labels)})

    def choice_of(self, params: dict[str, Any]) -> Choice:
        """The choice of a trial's parameters."""
        choice = [0] * len(self.problem.units)
        for members, name, combos, labels in zip(self.groups, self.names, self.combos,
                                                 self.labels):
            for unit, option in zip(members, combos[labels.index(params[name])]):
                choice[unit] = option
        return tuple(choice)

    def params(self, choice: Choice) -> dict[str, str]:
        """The trial parameters of a choice (to enqueue it)."""
        params = {}
        for members, name, combos, labels in zip(self.groups, self.names, self.combos,
                                                 self.labels):
            params[name] = labels[combos.index(tuple(choice[i] for i in members))]
        return params


@dataclass(frozen=True)
class RefinedPoint:
    """A completed trial: its plan, predicted latency (ms) and measured error."""

    latency_ms: float
    measured_error: float
    predicted_error: float
    plan: Plan
    trial: int


@dataclass(frozen=True)
class Limits:
    """The limits a plan must keep (None: no limit)."""

    budget_ms: float | None = None
    size_mb: float | None = None
    gbops: float | None = None

    def excess(self, problem: SearchProblem, choice: Choice) -> dict[str, float]:
        """Every limit's constraint value (<= 0: kept)."""
        values = {"latency_ms": (problem.latency_of(choice), self.budget_ms),
                  "size_mb": (problem.size_of(choice), self.size_mb),
                  "gbops": (problem.gbops_of(choice), self.gbops)}
        return {key: value - limit for key, (value, limit) in values.items()
                if limit is not None}


def create_or_resume(url: str, study_name: str, problem: SearchProblem,
                     settings: dict[str, Any], seeds: Sequence[Choice], seed: int | None
                     ) -> optuna.Study:
    """The study ``study_name`` in ``url``: created with ``settings`` and the ``seeds``
    enqueued, or, if it exists, checked to hold the same problem and resumed.

    Raises:
        ValueError: a study of that name exists for another problem.
    """
    storage = open_storage(url)
    study = optuna.create_study(study_name=study_name, storage=storage,
                                directions=["minimize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(seed=seed),
                                load_if_exists=True)
    stored = study.user_attrs.get(SETTINGS_ATTR)
    wanted = study_settings(problem, settings)
    if stored is None:
        study.set_user_attr(SETTINGS_ATTR, wanted)
        space = SearchSpace(problem)
        for choice in seeds:
            study.enqueue_trial(space.params(choice), skip_if_exists=True)
    elif stored != wanted:
        differ = sorted(k for k in wanted if stored.get(k) != wanted[k])
        raise ValueError(f"study {study_name!r} in {url} was made for another search "
                         f"(its {', '.join(differ)} differ); pass another study_name")
    retried = retry_dead_trials(study, storage)
    if retried:
        logger.info("study %s: %d trials of stopped workers enqueued again", study_name,
                    retried)
    return study


def study_settings(problem: SearchProblem, settings: dict[str, Any]) -> dict[str, Any]:
    """What a study stores about its search (as it reads back from the storage)."""
    return json.loads(json.dumps({**settings, "problem": problem.to_dict()}))


def default_study_name(model: str, device: str, runtime: str, batch: int,
                       settings: dict[str, Any]) -> str:
    """``mixprec-<model>-<device>-<runtime>-b<batch>-<hash of the settings>``."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return f"mixprec-{model}-{device}-{runtime}-b{batch}-{digest}"


def optimize(study: optuna.Study, problem: SearchProblem, error_of: Callable[[Plan], float],
             limits: Limits, trials: int) -> None:
    """Run trials until the study holds ``trials`` completed ones (other workers' count)."""
    space = SearchSpace(problem)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        mark_worker(trial)
        choice = space.suggest(trial)
        for key, value in limits.excess(problem, choice).items():
            trial.set_constraint(key, value)
        trial.set_user_attr(PREDICTED_ERROR_ATTR, problem.error_of(choice))
        return error_of(problem.plan(choice)), problem.latency_of(choice)

    if completed(study) >= trials:
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, callbacks=[MaxTrialsCallback(trials,
                                                           states=(TrialState.COMPLETE,))])


def completed(study: optuna.Study) -> int:
    """The number of completed trials."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def refined_points(study: optuna.Study, problem: SearchProblem) -> list[RefinedPoint]:
    """The completed trials that keep every limit, non-dominated in (predicted latency,
    measured error), fastest first."""
    space = SearchSpace(problem)
    points = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if any(v > 0 for v in trial.constraints.values()):
            continue
        choice = space.choice_of(trial.params)
        points.append(RefinedPoint(problem.latency_of(choice), trial.values[0],
                                   problem.error_of(choice), problem.plan(choice),
                                   trial.number))
    points.sort(key=lambda p: (p.latency_ms, p.measured_error))
    front: list[RefinedPoint] = []
    for point in points:
        if not front or point.measured_error < front[-1].measured_error:
            front.append(point)
    return front
