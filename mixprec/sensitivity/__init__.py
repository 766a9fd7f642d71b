"""Sensitivity estimators behind one registry, and their fidelity check.

``estimate(model, units, candidates, calib, method="sqnr_global")`` gives a
:class:`SensitivityTable` (unit x candidate -> expected error increase); ``available()``
lists the methods, ``create(name)`` builds one; ``hybrid_plan`` picks static or dynamic
activations per linear unit; ``fidelity`` checks a table against measured accuracy.
"""

from mixprec.sensitivity.estimate import estimate
from mixprec.sensitivity.fidelity import FidelityReport, fidelity
from mixprec.sensitivity.hybrid import hybrid_plan
from mixprec.sensitivity.registry import Estimator, available, create, register
from mixprec.sensitivity.table import SensitivityTable, load_table

__all__ = [
    "Estimator", "FidelityReport", "SensitivityTable", "available", "create", "estimate",
    "fidelity", "hybrid_plan", "load_table", "register",
]
