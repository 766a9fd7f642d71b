"""The CPU fingerprint: what the machine is, read truthfully, and what changes its key."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import torch

from mixprec.kernels import cpu_fingerprint
from mixprec.kernels.cpu.capabilities import ARM_FLAGS, X86_FLAGS


def test_fingerprint_describes_this_machine():
    fp = cpu_fingerprint()
    assert fp.machine and fp.model_name and fp.vendor
    assert set(fp.flags) <= set(X86_FLAGS) | set(ARM_FLAGS)
    assert fp.threads == torch.get_num_threads() and fp.cores >= 1
    assert fp.versions["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert fp.torch_isa == torch.backends.cpu.get_cpu_capability()
    assert fp.model_name in fp.summary() and fp.key in fp.summary()
    json.dumps(fp.to_dict())


def test_key_is_stable_and_changes_with_what_matters():
    fp = cpu_fingerprint(threads=2)
    assert fp.key == cpu_fingerprint(threads=2).key
    assert fp.key != cpu_fingerprint(threads=3).key
    capped = dataclasses.replace(fp, isa_limit="SSE41" if fp.isa_limit != "SSE41" else "AVX2")
    assert capped.key != fp.key


def test_isa_cap_hides_int8_dot_products():
    fp = cpu_fingerprint()
    capped = dataclasses.replace(fp, isa_limit="AVX2")
    if fp.is_x86:
        assert not capped.has_int8_dot and not capped.has_native_bf16
    vnni = dataclasses.replace(fp, machine="x86_64", flags=("avx2", "avx512_vnni"),
                               isa_limit="")
    assert vnni.has_int8_dot and not vnni.has_native_bf16
    arm = dataclasses.replace(fp, machine="aarch64", flags=("asimd", "asimddp", "bf16"),
                              isa_limit="")
    assert arm.has_int8_dot and arm.has_native_bf16


def test_the_cap_is_read_from_the_environment():
    code = "from mixprec.kernels import cpu_fingerprint as f; print(f().isa_limit)"
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="avx2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "AVX2"
