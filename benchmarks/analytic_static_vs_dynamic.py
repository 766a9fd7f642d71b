"""Sanity figure for the analytic tables: the predicted speed-up of all-static over
all-dynamic W8A8 (every unit that has an int8 kernel on the device; the rest in the device's
float), from the shipped a100 and a15 tables, beside the thesis's Hybrid Quantization
speed-ups (1.15 on a Xeon 5218, 1.28 on an A15, 1.68 on an A100). Analytic: no device was
measured.

    python benchmarks/analytic_static_vs_dynamic.py
"""

from __future__ import annotations

from mixprec.cost_models import load, predict_latency
from mixprec.cost_models.table import FLOAT32, LatencyTable
from mixprec.kernels.registry import FP16, W8A8_DYNAMIC, W8A8_STATIC
from mixprec.quant import Plan

MODELS = ("deit_small_patch16_224", "deit_base_patch16_224", "vit_base_patch16_224",
          "swin_tiny_patch4_window7_224")
THESIS_HQ = {"a15": 1.28, "a100": 1.68}


def int8_everywhere(table: LatencyTable, spec) -> Plan:
    """``spec`` on every unit whose kind the table covers it for, the device float elsewhere."""
    float_spec = FP16 if FP16 in table.candidates("linear") else FLOAT32
    return Plan({u.name: spec if spec in table.candidates(u.kind) else float_spec
                 for u in table.units}, model_id=table.model_id)


def main() -> None:
    print(f"{'device':<6} {'model':<30} {'batch':>5} {'static ms':>10} {'dynamic ms':>11} "
          f"{'speed-up':>9} {'thesis HQ':>9}")
    for device, thesis in THESIS_HQ.items():
        for model in MODELS:
            for batch in (1, 8):
                table = load(device, model, batch=batch)
                static = predict_latency(int8_everywhere(table, W8A8_STATIC), table)
                dynamic = predict_latency(int8_everywhere(table, W8A8_DYNAMIC), table)
                print(f"{device:<6} {model:<30} {batch:>5} {static:>10.3f} {dynamic:>11.3f} "
                      f"{dynamic / static:>8.2f}x {thesis:>8.2f}x")
    print("analytic (roofline from spec-sheet figures; see mixprec/cost_models/analytic.py)")


if __name__ == "__main__":
    main()
