"""Cost models: what each unit's spec costs on a device, and a plan's whole-model latency.

* :func:`measure`: a :class:`LatencyTable` fitted to whole-plan timings taken with the real
  kernels of a runtime on the machine at hand, checked on held-out plans (cached and
  resumable); :func:`learn` fits it again with timings a search took;
* :func:`analytic_table`: a roofline table for a target class (``a100``, ``a15``) from cited
  spec-sheet figures, labelled analytic;
* :func:`load`: the table for this machine (shipped or cached) or a target class;
* :func:`predict_latency`: remainder + units + transitions of a plan, in ms.
"""

from mixprec.cost_models.analytic import DEVICE_MODELS, analytic_table
from mixprec.cost_models.measurement import learn, measure
from mixprec.cost_models.predict import (
    LatencyBreakdown,
    latency_breakdown,
    predict_latency,
    speed_factor,
)
from mixprec.cost_models.store import load
from mixprec.cost_models.table import (
    Entry,
    ForeignMachineWarning,
    LatencyTable,
    LatencyTableError,
    NoisyTableWarning,
    ShapeKey,
    Transition,
    load_table,
)

__all__ = ["DEVICE_MODELS", "Entry", "ForeignMachineWarning", "LatencyBreakdown",
           "LatencyTable", "LatencyTableError", "NoisyTableWarning", "ShapeKey", "Transition",
           "analytic_table", "latency_breakdown", "learn", "load", "load_table", "measure",
           "predict_latency", "speed_factor"]
