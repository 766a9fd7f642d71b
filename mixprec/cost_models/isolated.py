"""Float32 time of one unit run on its own: the anchor of a measured table's entries.

The inputs each representative unit sees in the model are captured in one forward pass; the
float module (a linear or convolution; for attention, PyTorch's SDPA on the captured
queries, keys and values) is then timed alone, in PyTorch or as a one-module ONNX Runtime
session from which the time of a session that only copies its first input is subtracted
(ONNX Runtime's per-call overhead is counted once, in the model's remainder).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mixprec.cost_models.timing import Timing, time_call
from mixprec.quant.inputs import ModelInputs, call_model
from mixprec.quant.sdpa import SdpaCall, intercept_sdpa
from mixprec.quant.tracing import ModuleStack, fused_attention
from mixprec.quant.units import Unit

UnitInputs = dict[str, tuple[torch.Tensor, ...]]


class _Sdpa(nn.Module):
    """Float attention core of a captured SDPA call: ``(q, k, v) -> output``."""

    def __init__(self, call: SdpaCall) -> None:
        super().__init__()
        self.scale = call.scale

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=self.scale)


class _Copy(nn.Module):
    """Returns a copy of its input (an ONNX Runtime session that only moves data)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0


def capture_unit_inputs(model: nn.Module, units: list[Unit], inputs: ModelInputs
                        ) -> tuple[UnitInputs, dict[str, nn.Module]]:
    """Run ``inputs`` through ``model`` once; return, for each of ``units`` (weight units by
    name, attention units by their module's name), the tensors its float computation takes
    and the float module that computes it."""
    modules = dict(model.named_modules())
    wanted_weights = {u.name for u in units if not u.is_attention}
    wanted_attention = {u.module_name for u in units if u.is_attention}
    captured: UnitInputs = {}
    cores: dict[str, nn.Module] = {}

    def pre_hook(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            captured.setdefault(name, (args[0].detach().clone(),))
        return hook

    handles = [modules[n].register_forward_pre_hook(pre_hook(n)) for n in wanted_weights]
    stack = ModuleStack(model)

    def on_sdpa(call: SdpaCall) -> torch.Tensor:
        owner = stack.current()
        if owner in wanted_attention and owner not in captured:
            captured[owner] = (call.q.clone(), call.k.clone(), call.v.clone())
            cores[owner] = _Sdpa(call)
        return call.run_original()

    try:
        with stack, fused_attention(model), intercept_sdpa(on_sdpa), torch.inference_mode():
            call_model(model, inputs)
    finally:
        for handle in handles:
            handle.remove()
    cores.update({n: modules[n] for n in wanted_weights})
    return captured, cores


def isolated_ms(module: nn.Module, inputs: tuple[torch.Tensor, ...], runtime: str,
                threads: int, repeats: int, warmup: int) -> Timing:
    """The float time of ``module`` on ``inputs`` alone in ``runtime`` (ms)."""
    if runtime == "torch":
        with torch.inference_mode():
            return time_call(lambda: module(*inputs), repeats, warmup)
    from mixprec.deploy.onnx_graph import GraphModel, export_onnx, graph_runtime

    def session(mod: nn.Module, feeds: tuple[torch.Tensor, ...]) -> GraphModel:
        return graph_runtime(runtime).of(
            export_onnx(mod.eval(), feeds if len(feeds) > 1 else feeds[0]), threads)

    # contiguous once, here: a strided capture (attention's Q, K, V are views of the qkv
    # output) would be copied by torch on every call, and the OpenMP threads of that copy
    # keep spinning against the session's (mnist-vit b8 attention: 7.9 ms instead of 2.3)
    inputs = tuple(t.contiguous() for t in inputs)
    unit, copy = session(module, inputs), session(_Copy(), inputs[:1])
    full = time_call(lambda: unit(*inputs), repeats, warmup)
    overhead = time_call(lambda: copy(inputs[0]), repeats, warmup)
    return Timing(max(0.0, full.median_ms - overhead.median_ms), full.spread_ms, full.repeats)
