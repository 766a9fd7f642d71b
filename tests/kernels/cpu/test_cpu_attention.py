"""Int8 attention on the CPU agrees with the simulated attention (same SDPA call)."""

from __future__ import annotations

import pytest
import torch

from mixprec.kernels.cpu import CpuAttention
from mixprec.quant import QuantSpec
from mixprec.quant.modules import AttentionQuant, attention_operands
from mixprec.quant.observers import Observer
from mixprec.quant.sdpa import SdpaCall
from tests.helpers import sqnr

SQNR_DB = 35.0
STATIC = QuantSpec(weight_bits=16, act_bits=8, act_mode="static")
DYNAMIC = QuantSpec(weight_bits=16, act_bits=8, act_mode="dynamic")
BF16 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none", float_dtype="bfloat16")
FP32 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")


def _call(mask: torch.Tensor | None = None) -> SdpaCall:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 50, 32, generator=gen) for _ in range(3))
    return SdpaCall(q, k, v, mask, 0.0, False, None, False)


def _observers(call: SdpaCall) -> dict[str, Observer]:
    observers = {}
    for point, value in attention_operands(call).items():
        observers[point] = Observer()
        observers[point].observe(value)
    return observers


@pytest.mark.parametrize(("qk", "pv"), [(STATIC, STATIC), (DYNAMIC, DYNAMIC), (DYNAMIC, BF16),
                                        (FP32, STATIC), (BF16, BF16), (BF16, FP32)],
                         ids=["static", "dynamic", "int8qk-bf16pv", "fp32qk-int8pv", "bf16",
                              "bf16qk-fp32pv"])
def test_attention_agrees_with_simulation(qk, pv):
    call = _call()
    observers = _observers(call)
    real = CpuAttention(qk, pv, observers)(call)
    sim = AttentionQuant(qk, pv, observers)(call)
    assert real.shape == call.q.shape
    assert sqnr(real, sim) >= SQNR_DB
    assert sqnr(real, call.run_original()) >= 20.0


def test_attention_mask_is_applied():
    mask = torch.ones(50, 50, dtype=torch.bool).tril()
    call = _call(mask)
    real = CpuAttention(DYNAMIC, DYNAMIC, {})(call)
    assert sqnr(real, call.run_original()) >= 25.0


def test_static_attention_needs_calibration():
    with pytest.raises(RuntimeError, match="calibration"):
        CpuAttention(STATIC, STATIC, {})
