"""Search: the plan of a model for a device, and the Pareto front it comes from.

* :func:`run`: sensitivity, latency tables, the exact front and the chosen plan;
* :func:`build_problem` / :class:`SearchProblem`: units, options and their costs;
* :func:`solve` / :func:`best_within`: the ILP (CBC through PuLP, or HiGHS through scipy);
* :func:`pareto_front`: the exact (latency, error) front;
* :func:`join`: work on a running refinement study (Optuna) from another process.
"""

from mixprec.search.ilp import SOLVERS, InfeasibleError, best_within, solve
from mixprec.search.pareto import FrontChoice, pareto_front
from mixprec.search.problem import PairCost, SearchProblem, build_problem
from mixprec.search.result import FrontPoint, SearchResult
from mixprec.search.run import run


def __getattr__(name: str) -> object:
    """``join`` and ``Refinement`` import Optuna: only when asked for."""
    if name in ("join", "Refinement"):
        from mixprec.search import refine

        return getattr(refine, name)
    raise AttributeError(f"module 'mixprec.search' has no attribute {name!r}")

__all__ = ["SOLVERS", "FrontChoice", "FrontPoint", "InfeasibleError", "PairCost",
           "Refinement", "SearchProblem", "SearchResult", "best_within", "build_problem", "join",
           "pareto_front", "run", "solve"]
