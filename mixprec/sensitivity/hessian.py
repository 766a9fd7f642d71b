"""hessian: Hutchinson Hessian trace x quantization noise power (HAWQ-V2/V3 style)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack

import torch
from torch import nn

from mixprec.quant.calibrate import CalibrationStats
from mixprec.quant.inputs import ModelInputs, call_model, primary_output, sample_count, split
from mixprec.quant.modules import FakeQuantConv2d, expand_kv_heads
from mixprec.quant.sdpa import SdpaCall, attention_scores
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import PV_SUFFIX, QK_SUFFIX, Unit
from mixprec.sensitivity.probe import (
    attention_owners,
    quantized_module,
    sdpa_taps,
    weight_units,
)
from mixprec.sensitivity.registry import ProbedEstimator, Progress, Scores

Key = tuple[str, str]
"""(unit name, tensor): tensor is ``weight``/``input`` (weight units), ``q``/``k``
(``attn_qk``) or ``p``/``v`` (``attn_pv``)."""


class Hessian(ProbedEstimator):
    """Per image, ``0.5 * sum_T tr(H_T) / numel(T) * ||T - Q(T)||^2`` over the tensors ``T``
    a unit quantizes; ``H`` is the Hessian of the KL to the float output (label-free).

    HAWQ scores weights only; here activation quantization matters too, so every quantized
    tensor is a term: a weight unit's weight and input activation, an ``attn_qk`` unit's Q
    and K, an ``attn_pv`` unit's P (softmax probabilities) and V. Attention units have no
    weights, so their score is the activation terms alone; activation traces use a zero
    perturbation added at the tensor, summed over every calibration image.

    Traces are Hutchinson estimates. At the float point the Hessian of the KL equals the
    Gauss-Newton matrix ``J^T H_z J`` (``H_z = diag(p) - p p^T`` per image), so the
    Rademacher probes ``u`` live in the logit space: ``tr(H_T) = E ||J_T^T H_z^(1/2) u||^2``,
    one backward pass per probe for all tensors at once. Unlike parameter-space probes
    (Hessian-vector products), whose per-tensor estimates carry the cross-tensor terms and
    came out negative in trials, these are unbiased, non-negative and need no double
    backward.

    Args:
        probes: Hutchinson probes per batch (backward passes).
        batch_size: images per pass.
    """

    name = "hessian"

    def score(self, model: nn.Module, units: Sequence[Unit], candidates: Sequence[QuantSpec],
              calib: ModelInputs, stats: CalibrationStats, seed: int,
              progress: Progress) -> Scores:
        gen = torch.Generator().manual_seed(seed)
        stand_ins = {u.name: [quantized_module(model, u, c, stats) for c in candidates]
                     for u in units}
        trace: dict[Key, float] = defaultdict(float)
        numel: dict[Key, int] = defaultdict(int)
        noise: dict[Key, list[float]] = defaultdict(lambda: [0.0] * len(candidates))
        for unit in weight_units(units):
            weight = model.get_submodule(unit.name).weight.detach()
            numel[unit.name, "weight"] = weight.numel()
            for j, q in enumerate(stand_ins[unit.name]):
                noise[unit.name, "weight"][j] = _power(q.weight - weight)
        for chunk in split(calib, self.batch_size):
            values = self._chunk_traces(model, units, chunk, gen, trace)
            for (name, tensor), value in values.items():
                numel[name, tensor] += value.numel()
                for j, q in enumerate(stand_ins[name]):
                    noise[name, tensor][j] += _power(_quantizer(q, tensor)(value) - value)
            progress(1)
        matrix = [[0.0] * len(candidates) for _ in units]
        row = {u.name: i for i, u in enumerate(units)}
        for (name, tensor), powers in noise.items():
            density = trace[name, tensor] / numel[name, tensor]
            for j, p in enumerate(powers):
                matrix[row[name]][j] += 0.5 * density * p / sample_count(calib)
        return Scores(matrix, settings={"samples": self.probes, "batch_size": self.batch_size,
                                        "loss": "kl_to_float"})

    def _chunk_traces(self, model: nn.Module, units: Sequence[Unit], chunk: ModelInputs,
                      gen: torch.Generator, trace: dict[Key, float]
                      ) -> dict[Key, torch.Tensor]:
        """Add this batch's Hutchinson trace estimates to ``trace``; return the float values
        of the activation tensors."""
        probes: dict[Key, torch.Tensor] = {}
        values: dict[Key, torch.Tensor] = {}
        wanted = {u.name for u in units}
        with ExitStack() as stack, torch.enable_grad():
            for unit in weight_units(units):
                module = model.get_submodule(unit.name)
                flag = module.weight.requires_grad
                module.weight.requires_grad_(True)
                stack.callback(module.weight.requires_grad_, flag)
                probes[unit.name, "weight"] = module.weight
                hook = module.register_forward_pre_hook(_perturb_input(unit.name, probes, values))
                stack.callback(hook.remove)

            def on_attention(owner: str, call: SdpaCall) -> torch.Tensor:
                k, v = expand_kv_heads(call)
                qk, pv = owner + QK_SUFFIX, owner + PV_SUFFIX
                q = _perturbed(qk, "q", call.q, probes, values, qk in wanted)
                k = _perturbed(qk, "k", k, probes, values, qk in wanted)
                p = attention_scores(call, q, k)
                p = _perturbed(pv, "p", p, probes, values, pv in wanted)
                return p @ _perturbed(pv, "v", v, probes, values, pv in wanted)

            stack.enter_context(sdpa_taps(model, attention_owners(units), on_attention))
            logits = primary_output(call_model(model, chunk))
            probs = logits.detach().double().softmax(-1)
            keys = list(probes)
            for s in range(self.probes):
                u = torch.randint(0, 2, probs.shape, generator=gen).double() * 2 - 1
                root = probs.sqrt() * u
                r = root - probs * root.sum(-1, keepdim=True)  # H_z^(1/2) u per image
                grads = torch.autograd.grad((logits * r.to(logits.dtype)).sum(),
                                            [probes[k] for k in keys],
                                            retain_graph=s < self.probes - 1, allow_unused=True)
                for key, g in zip(keys, grads):
                    if g is not None:
                        trace[key] += g.double().pow(2).sum().item() / self.probes
        return values


def _perturb_input(name: str, probes: dict[Key, torch.Tensor], values: dict[Key, torch.Tensor]):
    def hook(module: nn.Module, args: tuple) -> tuple:
        return (_perturbed(name, "input", args[0], probes, values, True), *args[1:])
    return hook


def _perturbed(name: str, tensor: str, x: torch.Tensor, probes: dict[Key, torch.Tensor],
               values: dict[Key, torch.Tensor], wanted: bool) -> torch.Tensor:
    """``x`` plus a zero probe that receives the Hessian-vector products."""
    if not wanted:
        return x
    zero = torch.zeros_like(x, requires_grad=True)
    probes[name, tensor] = zero
    values[name, tensor] = x.detach()
    return x + zero


def _quantizer(stand_in: nn.Module, tensor: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The quantizer of activation ``tensor`` in a unit's stand-in."""
    if tensor != "input":
        return getattr(stand_in, tensor)
    if isinstance(stand_in, FakeQuantConv2d):
        return lambda x: stand_in.act(x.flatten(1)).reshape(x.shape)
    return stand_in.act


def _power(diff: torch.Tensor) -> float:
    return diff.detach().double().pow(2).sum().item()
