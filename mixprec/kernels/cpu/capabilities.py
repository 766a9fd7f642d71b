"""The fingerprint of the CPU at hand: what it is, which ISA extensions it has, with what.

Kernels, the kernel registry, benchmarks and latency tables key on it: the same model wants
different plans on an AVX2-only AMD EPYC, an AVX-512 VNNI Xeon with AMX and an ARM core with
dot-product instructions. The device name ``cpu`` always means this machine; ``xeon`` and
``a15`` are target classes, not claims about the machine at hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from mixprec.provenance import package_versions

X86_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")
"""x86 ``/proc/cpuinfo`` flags worth knowing for int8 / bf16 GEMMs."""
ARM_FLAGS = ("asimd", "asimddp", "i8mm", "bf16", "sve", "sve2")
"""ARM ``/proc/cpuinfo`` features (``asimddp``: int8 dot product, ``i8mm``: int8 matrix mul)."""
ISA_LIMIT_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
"""Environment variables that cap the ISA oneDNN uses (they change which kernels run)."""
_CAPS_WITHOUT_VNNI = ("SSE41", "AVX", "AVX2", "AVX512_CORE")
"""oneDNN ISA caps below every int8 dot-product extension."""
_CAPS_WITHOUT_BF16 = (*_CAPS_WITHOUT_VNNI, "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE_VNNI")
"""oneDNN ISA caps below every bf16 GEMM extension."""
RUNTIME_PACKAGES = ("torch", "onnxruntime")
_ID_KEYS = ("cpu family", "model", "stepping", "CPU part", "CPU variant")


@dataclass(frozen=True)
class CpuFingerprint:
    """Identity of the CPU at hand and of the software that runs kernels on it.

    Attributes:
        machine: ``platform.machine()`` (``x86_64``, ``aarch64``, ...).
        vendor: ``GenuineIntel``, ``AuthenticAMD``, an ARM implementer code, or ``unknown``.
        model_name: the CPU's model string.
        cpu_id: family / model / stepping (x86) or implementer part (ARM): tells apart CPUs
            with the same model string (e.g. "AMD EPYC" of the Zen 3 and Zen 4 kinds).
        flags: the ISA extensions of :data:`X86_FLAGS` / :data:`ARM_FLAGS` it reports.
        isa_limit: a cap set on oneDNN's ISA through the environment ("" if none).
        torch_isa: the ISA level torch dispatches its own kernels to.
        cores: logical CPUs this process may run on.
        threads: torch intra-op threads.
        versions: runtime package -> version (``not installed`` when absent).
    """

    machine: str
    vendor: str
    model_name: str
    cpu_id: str
    flags: tuple[str, ...]
    isa_limit: str
    torch_isa: str
    cores: int
    threads: int
    versions: dict[str, str]

    @property
    def is_x86(self) -> bool:
        """Whether this is an x86-64 CPU."""
        return self.machine.lower() in ("x86_64", "amd64")

    @property
    def has_int8_dot(self) -> bool:
        """Whether the CPU has 32-bit-accumulating int8 dot products (VNNI, ARM dotprod).

        Without them, x86 int8 GEMMs add pairs of u8 x s8 products in 16 bits (vpmaddubsw)
        and saturate; a cap such as ``ONEDNN_MAX_CPU_ISA=AVX2`` forces that path.
        """
        if self.is_x86:
            vnni = bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(self.flags))
            return vnni and self.isa_limit not in _CAPS_WITHOUT_VNNI
        return "asimddp" in self.flags

    @property
    def has_native_bf16(self) -> bool:
        """Whether bf16 GEMMs run in hardware (AVX512-BF16, AMX-BF16, ARM bf16)."""
        if self.is_x86:
            native = bool({"avx512_bf16", "amx_bf16"} & set(self.flags))
            return native and self.isa_limit not in _CAPS_WITHOUT_BF16
        return "bf16" in self.flags

    @property
    def key(self) -> str:
        """Short hash of everything that changes what kernels compute or how fast."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def summary(self) -> str:
        """One line for logs and benchmark headers."""
        limit = f" (oneDNN capped at {self.isa_limit})" if self.isa_limit else ""
        versions = " ".join(f"{k} {v}" for k, v in self.versions.items())
        return (f"{self.model_name} [{self.vendor} {self.cpu_id}, {self.machine}] flags: "
                f"{' '.join(self.flags) or 'none'}{limit}; torch ISA {self.torch_isa}; "
                f"{self.cores} cores, {self.threads} threads; {versions}; key {self.key}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)


def cpu_fingerprint(threads: int | None = None) -> CpuFingerprint:
    """The fingerprint of this machine's CPU.

    Args:
        threads: the intra-op thread count to record (default: ``torch.get_num_threads()``).
    """
    info = _cpuinfo()
    machine = platform.machine() or "unknown"
    known = X86_FLAGS if machine.lower() in ("x86_64", "amd64") else ARM_FLAGS
    present = set(info.get("flags", "").split()) | set(info.get("Features", "").split())
    limit = next((os.environ[v] for v in ISA_LIMIT_VARIABLES if os.environ.get(v)), "")
    return CpuFingerprint(
        machine=machine,
        vendor=info.get("vendor_id") or info.get("CPU implementer") or "unknown",
        model_name=info.get("model name") or platform.processor() or "unknown",
        cpu_id=" ".join(f"{k.replace('CPU ', '')} {info[k]}" for k in _ID_KEYS if k in info),
        flags=tuple(f for f in known if f in present),
        isa_limit=limit.upper(),
        torch_isa=torch.backends.cpu.get_cpu_capability(),
        cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else
        (os.cpu_count() or 1),
        threads=threads if threads is not None else torch.get_num_threads(),
        versions=package_versions(RUNTIME_PACKAGES),
    )


def runtime_versions(runtime: str) -> dict[str, str]:
    """The version of a runtime's package where the fingerprint (whose key names the
    :data:`RUNTIME_PACKAGES` versions) does not cover it: OpenVINO's, kept with its own
    tables and timings."""
    return {} if runtime in RUNTIME_PACKAGES else package_versions([runtime])


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """First value of each key of ``/proc/cpuinfo`` (empty off Linux)."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return {}
    info: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip(), value.strip())
    return info
