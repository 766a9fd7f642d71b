"""deploy(device="a100") builds the Triton model; run here with TRITON_INTERPRET=1 on the CPU.

The interpreter must be switched on before Triton decorates any kernel, so the check runs in
a fresh interpreter process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

SCRIPT = r"""
import torch
from mixprec import data, deploy, quant
from mixprec.deploy.triton_modules import (
    TritonAttention, TritonInt8Linear, TritonTokenSplitLinear, TritonW4A8Linear,
    TritonW4A16Linear)
from mixprec.quant import Plan, QuantSpec, TokenSplit

model = data.mnist_vit("mnist-vit-small")
x = data.mnist("test")[0][:2]
calib = data.mnist("train")[0][:32]
units = quant.discover_units(model, x[:1])
f16 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none", float_dtype="float16")
w4 = QuantSpec(weight_bits=4, act_bits=16, act_mode="none", weight_granularity="per_group",
               group_size=32, float_dtype="float16")
w4a8 = QuantSpec(weight_bits=4, act_bits=8, act_mode="dynamic", weight_granularity="per_group",
                 group_size=32)
specs = []
for u in units:
    if u.kind == "attn_qk":
        spec = QuantSpec(weight_bits=16, act_bits=8, act_mode="dynamic")
    elif u.kind in ("attn_pv", "conv_gemm"):
        spec = f16
    elif u.name.endswith("fc2"):
        spec = w4 if "blocks.0." in u.name else w4a8
    elif u.name.endswith("fc1"):  # 4-bit tokens, each image's outliers on 8 bits
        spec = QuantSpec(weight_bits=8, act_bits=4, act_mode="dynamic",
                         token_split=TokenSplit(0.1, 8))
    else:
        spec = QuantSpec(weight_bits=8, act_bits=8,
                         act_mode="static" if "blocks.1." in u.name else "dynamic")
    specs.append((u.name, spec))
plan = Plan(tuple(specs), units.model_id, units.input_shape)
real = deploy(model, plan, device="a100", calib=calib, units=units)
sim = quant.simulate(model, plan, calib, units=units)
mods = dict(real.named_modules())
assert isinstance(mods["blocks.1.attn.qkv"], TritonInt8Linear)
assert isinstance(mods["blocks.0.mlp.fc2"], TritonW4A16Linear)
assert isinstance(mods["blocks.1.mlp.fc2"], TritonW4A8Linear)
assert isinstance(mods["blocks.0.mlp.fc1"], TritonTokenSplitLinear)
assert isinstance(mods["blocks.0.attn.mixprec_attn_quant"], TritonAttention)
with torch.inference_mode():
    a, b = real(x), sim(x)
print(float(10 * torch.log10(b.pow(2).mean() / (a - b).pow(2).mean())))
"""


def test_a100_deploy_runs_triton_kernels_in_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.strip().splitlines()[-1]) >= 35.0
