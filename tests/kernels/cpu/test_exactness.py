"""Exact int8 paths: the probes, and the no-VNNI code path forced on any x86 CPU.

oneDNN honours ``ONEDNN_MAX_CPU_ISA=AVX2`` (read when torch starts, so it runs in a fresh
process): there its u8 x s8 GEMMs sum pairs in 16 bits and saturate with 8-bit activations.
The CPU tests and the deploy tests run again under that cap, so a green run on a VNNI
machine means green on AVX2-only ones (the AMD EPYC Zen 3 kind).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mixprec.kernels.cpu.exactness import exact_product, onednn_exact, probe_operands
from mixprec.kernels.cpu.int8 import exact_backends

ROOT = Path(__file__).resolve().parents[3]
X86 = platform.machine().lower() in ("x86_64", "amd64")
FORCED = "ONEDNN_MAX_CPU_ISA"


def test_probe_operands_overflow_a_16_bit_pair_sum():
    acts, weights = probe_operands(127)
    pair = (acts[0, :2].long() + 128) * weights[0, :2].long()
    assert pair.sum() > 32767
    assert exact_product(acts, weights)[0, 0] == 127 * 127 * acts.shape[1]


@pytest.mark.skipif(not X86, reason="oneDNN's no-VNNI path exists on x86 only")
def test_seven_bit_activations_are_exact_on_every_x86_path():
    assert onednn_exact(63)
    assert exact_backends(8), "8-bit activations need an exact path (split GEMMs at least)"


@pytest.mark.skipif(not X86 or not torch.backends.mkldnn.is_available(),
                    reason="oneDNN's no-VNNI path exists on x86 only")
@pytest.mark.skipif(bool(os.environ.get(FORCED)), reason="already under a forced ISA")
def test_forced_no_vnni_path_is_detected_and_avoided():
    code = ("from mixprec.kernels.cpu.exactness import onednn_exact\n"
            "from mixprec.kernels.cpu.int8 import exact_backends\n"
            "from mixprec import kernels\n"
            "print(onednn_exact(127), onednn_exact(63), exact_backends(8)[0],\n"
            "      sorted(c.label for c in kernels.candidates('cpu', 'linear')))")
    env = dict(os.environ, **{FORCED: "AVX2"})
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out.startswith("False True onednn_split")
    assert "'W8A7-static'" in out and "'W8A8-static'" in out and "'W8A8-dynamic'" in out


@pytest.mark.skipif(not X86 or not torch.backends.mkldnn.is_available(),
                    reason="oneDNN's no-VNNI path exists on x86 only")
@pytest.mark.skipif(bool(os.environ.get(FORCED)), reason="already under a forced ISA")
def test_cpu_and_deploy_tests_pass_on_the_forced_no_vnni_path():
    env = dict(os.environ, **{FORCED: "AVX2"})
    tests = ["tests/kernels/cpu", "tests/deploy/test_deploy.py",
             "tests/deploy/test_deploy_onnxruntime.py"]
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                             *tests], env=env, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
