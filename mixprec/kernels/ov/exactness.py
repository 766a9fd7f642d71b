"""Probe: does OpenVINO's CPU plugin run a quantize-dequantize GEMM in exact int8 here?

On x86 CPUs without VNNI, 8-bit integer GEMMs sum u8 x s8 pairs in 16 bits and saturate
(NNCF's ``overflow_fix`` quantizes weights to 7 bits there for that reason). The probe
exports one static W8A8 (or W8A7) linear with operands at the grid's limits
(:func:`mixprec.kernels.cpu.exactness.probe_operands`), compiles it, and checks both that
the plugin chose an int8 kernel and that its result equals the exact integer product; once
per process.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import nn

from mixprec.kernels.cpu.exactness import exact_product, probe_operands
from mixprec.kernels.cpu.int8 import grid_max
from mixprec.kernels.ov.modules import QdqLinear
from mixprec.quant.observers import Observer
from mixprec.quant.spec import QuantSpec


@cache
def ov_int8_exact(bits: int) -> bool:
    """Whether OpenVINO runs static GEMMs of 8-bit weights and ``bits``-bit activations in
    int8, exactly, on this machine."""
    from mixprec.deploy.onnx_graph import export_onnx
    from mixprec.deploy.openvino_runtime import OvModel, int8_layers

    act_max = grid_max(bits)
    acts, weights = probe_operands(act_max)
    linear = nn.Linear(weights.shape[1], weights.shape[0], bias=False)
    with torch.no_grad():
        linear.weight.copy_(weights.float())
    observer = Observer()
    observer.observe(torch.tensor([[-act_max, act_max]], dtype=torch.float32))  # scale 1
    spec = QuantSpec(weight_bits=8, act_bits=bits, act_mode="static")
    probe = QdqLinear(linear, spec, observer)
    model = OvModel.of(export_onnx(probe, acts.float()), threads=1)
    got = model(acts.float()).double()
    scales = probe.qweight.scales.double()
    want = exact_product(acts, (probe.weight.double() / scales[:, None]).round()) * scales
    close = torch.allclose(got, want, rtol=1e-6, atol=1e-6 * float(want.abs().max()))
    return bool(int8_layers(model) > 0 and close)
