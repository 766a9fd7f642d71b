"""patch_global: a global, first-order (Fisher) metric for every unit and token, in one
gradient pass (after PMQ's lightweight global sensitivity)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mixprec.quant.calibrate import CalibrationStats
from mixprec.quant.inputs import (
    ModelInputs,
    call_model,
    primary_output,
    sample_count,
    split,
    with_input_grad,
)
from mixprec.quant.sdpa import SdpaCall
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import PV_SUFFIX, QK_SUFFIX, Unit
from mixprec.sensitivity.probe import (
    attention_owners,
    forward_taps,
    quantized_module,
    sdpa_taps,
    weight_units,
)
from mixprec.sensitivity.registry import ProbedEstimator, Progress, Scores


class PatchGlobal(ProbedEstimator):
    """Fisher estimate of the KL to the float output caused by each unit's noise.

    One float forward with autograd records every unit's input and output; ``probes``
    backward passes give ``g = d(-log p(y))/d(output)`` for labels ``y`` drawn from the
    float model's own prediction (label-free: their covariance is the Fisher of the KL to
    float). Then for each candidate, each unit's output error ``e = unit_q(x) - unit(x)``
    on its float input scores ``0.5 * E[(g . e)^2]`` per image (nats of KL, additive over
    units with independent noise), and ``0.5 * E[(g_t . e_t)^2]`` per token ``t`` for
    linear units (the per-token importance that patch-wise specs use).

    Args:
        probes: sampled labels per image (backward passes per batch).
        batch_size: images per pass.
    """

    name = "patch_global"

    def score(self, model: nn.Module, units: Sequence[Unit], candidates: Sequence[QuantSpec],
              calib: ModelInputs, stats: CalibrationStats, seed: int,
              progress: Progress) -> Scores:
        gen = torch.Generator().manual_seed(seed)
        stand_ins = [[quantized_module(model, u, c, stats) for c in candidates] for u in units]
        total = torch.zeros(len(units), len(candidates), dtype=torch.float64)
        tokens: dict[tuple[int, int], torch.Tensor] = {}
        for chunk in split(calib, self.batch_size):
            inputs, clean, grads = self._gradients(model, units, chunk, gen)
            for i, unit in enumerate(units):
                for j in range(len(candidates)):
                    with torch.no_grad():
                        err = stand_ins[i][j](inputs[i]) - clean[i]
                        per_token = _projections(grads[i], err)  # [batch, probes, tokens]
                        total[i, j] += 0.5 * per_token.sum(-1).pow(2).sum()
                        if unit.kind == "linear" and err.dim() == 3:
                            token = 0.5 * per_token.pow(2).sum((0, 1))
                            tokens[i, j] = tokens.get((i, j), 0) + token
            progress(1)
        n = sample_count(calib) * self.probes
        token_scores = {
            unit.name: {c.label: tuple((tokens[i, j] / n).tolist())
                        for j, c in enumerate(candidates)}
            for i, unit in enumerate(units) if (i, 0) in tokens}
        return Scores((total / n).tolist(), token_scores,
                      settings={"probes": self.probes, "batch_size": self.batch_size})

    def _gradients(self, model: nn.Module, units: Sequence[Unit], chunk: ModelInputs,
                   gen: torch.Generator
                   ) -> tuple[list[object], list[torch.Tensor], list[torch.Tensor]]:
        """Every unit's float input and output, and the gradients of its output:
        ``[batch, tokens, probes, features]`` for token outputs, else ``[batch, probes, ...]``."""
        index = {u.name: i for i, u in enumerate(units)}
        inputs: list[object] = [None] * len(units)
        outputs: list[torch.Tensor | None] = [None] * len(units)

        def on_weight(name: str, x: torch.Tensor, y: torch.Tensor) -> None:
            inputs[index[name]] = x.detach()
            outputs[index[name]] = y

        def on_attention(owner: str, call: SdpaCall) -> torch.Tensor:
            out = call.run_original()
            frozen = SdpaCall(call.q.detach(), call.k.detach(), call.v.detach(), call.attn_mask,
                              call.dropout_p, call.is_causal, call.scale, call.enable_gqa)
            for suffix in (QK_SUFFIX, PV_SUFFIX):
                if owner + suffix in index:
                    inputs[index[owner + suffix]] = frozen
                    outputs[index[owner + suffix]] = out
            return out

        with (torch.enable_grad(), forward_taps(model, [u.name for u in weight_units(units)],
                                                on_weight),
              sdpa_taps(model, attention_owners(units), on_attention)):
            logits = primary_output(call_model(model, with_input_grad(chunk)))
        missing = [u.name for u, o in zip(units, outputs) if o is None]
        if missing:
            raise RuntimeError(f"units not executed by the forward pass: {missing[:5]}")
        probs = logits.detach().float().softmax(-1)
        unique = {id(o): o for o in outputs}
        targets = list(unique)
        per_probe: list[tuple[torch.Tensor, ...]] = []
        for s in range(self.probes):
            labels = torch.multinomial(probs, 1, generator=gen).squeeze(1)
            loss = F.cross_entropy(logits, labels, reduction="sum")
            per_probe.append(torch.autograd.grad(loss, [unique[t] for t in targets],
                                                 retain_graph=s < self.probes - 1))
        stacked = {t: torch.stack([got[k] for got in per_probe],
                                  dim=2 if per_probe[0][k].dim() == 3 else 1)
                   for k, t in enumerate(targets)}
        grads = [stacked[id(o)] for o in outputs]
        return inputs, [o.detach() for o in outputs], grads


def _projections(grads: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
    """``g . e`` per image, probe and token: ``[batch, probes, tokens]`` (one token for
    outputs without a token axis), as batched matrix products (no elementwise copies)."""
    if err.dim() == 3:  # err [batch, tokens, features], grads [batch, tokens, probes, features]
        batch, tokens, probes, features = grads.shape
        g = grads.reshape(batch * tokens, probes, features)
        e = err.reshape(batch * tokens, features, 1)
        return (g @ e).reshape(batch, tokens, probes).transpose(1, 2).double()
    batch, probes = grads.shape[:2]
    return (grads.reshape(batch, probes, -1) @ err.reshape(batch, -1, 1)).double()
