"""Run a model from the cached float input of one of its blocks (no prefix recompute)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from mixprec.quant.inputs import ModelInputs, call_model, first_samples, primary_output, split
from mixprec.quant.units import Unit

logger = logging.getLogger(__name__)


def find_blocks(model: nn.Module, units: Sequence[Unit]) -> str | None:
    """FQN of the ``nn.Sequential`` with the most children that hold units (e.g. timm's
    ``blocks``), or None when no sequential holds units in two or more children."""
    owners = [u.module_name for u in units]
    best, best_count = None, 1
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        prefix = f"{name}." if name else ""
        count = sum(1 for child, _ in module.named_children()
                    if any(o.startswith(f"{prefix}{child}.") or o == f"{prefix}{child}"
                           for o in owners))
        if count > best_count:
            best, best_count = name, count
    return best


class _Resume(nn.Module):
    """Stands in for the block sequence: ignores its input, runs ``blocks[start:]`` on the
    cached float input of block ``start``."""

    def __init__(self, blocks: nn.Sequential, start: int, cached: torch.Tensor) -> None:
        super().__init__()
        self.tail = list(blocks)[start:]
        self.cached = cached

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.cached
        for block in self.tail:
            out = block(out)
        return out


class SuffixRunner:
    """Float pass that caches every block's input; later passes start at a unit's block.

    A unit inside block ``i`` only changes what block ``i`` and later compute, so its
    end-to-end effect is measured by running ``blocks[i:]`` (and what follows the blocks)
    from block ``i``'s cached float input. Units before the blocks run the full model;
    units after them start from the blocks' cached output.

    Args:
        model: the float model (eval mode).
        units: its units.
        calib: input images.
        batch_size: images per pass.
    """

    def __init__(self, model: nn.Module, units: Sequence[Unit], calib: ModelInputs,
                 batch_size: int = 64) -> None:
        self.model = model
        self.chunks = list(split(calib, batch_size))
        self.blocks_name = find_blocks(model, units)
        self.inputs: list[list[torch.Tensor]] = []
        self.outputs: list[torch.Tensor] = []
        self.reference: torch.Tensor = self._float_pass()
        self._start = {u.name: self._start_of(u) for u in units}

    @property
    def n_blocks(self) -> int:
        """Number of blocks whose inputs are cached (0 if none was found)."""
        return len(self._blocks) if self.blocks_name is not None else 0

    @property
    def _blocks(self) -> nn.Sequential:
        assert self.blocks_name is not None
        return self.model.get_submodule(self.blocks_name)

    def start(self, unit: Unit) -> int:
        """Block index a pass for ``unit`` starts at (-1: the whole model)."""
        return self._start[unit.name]

    def run(self, start: int) -> torch.Tensor:
        """Model output over all images, computed from block ``start`` on (-1: full model)."""
        outs = []
        with torch.inference_mode():
            for i, chunk in enumerate(self.chunks):
                if start < 0:
                    outs.append(self._forward(chunk))
                    continue
                cached = self.inputs[i][start] if start < self.n_blocks else self.outputs[i]
                outs.append(self._resumed(start, cached, chunk))
        return torch.cat(outs)

    def _forward(self, chunk: ModelInputs) -> torch.Tensor:
        return primary_output(call_model(self.model, chunk))

    def _resumed(self, start: int, cached: torch.Tensor, chunk: ModelInputs) -> torch.Tensor:
        parent_name, _, child = self.blocks_name.rpartition(".")  # type: ignore[union-attr]
        parent = self.model.get_submodule(parent_name) if parent_name else self.model
        blocks = getattr(parent, child)
        setattr(parent, child, _Resume(blocks, start, cached))
        try:
            return self._forward(chunk)
        finally:
            setattr(parent, child, blocks)

    def _float_pass(self) -> torch.Tensor:
        if self.blocks_name is None:
            logger.info("no block sequence found: every unit runs the whole model")
            with torch.inference_mode():
                return torch.cat([self._forward(c) for c in self.chunks])
        blocks = self._blocks
        current: list[torch.Tensor] = []
        calls = [0]

        def record(module: nn.Module, args: tuple) -> None:
            current.append(args[0].detach())

        def count(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            calls[0] += 1
            self.outputs.append(output.detach())

        handles = [b.register_forward_pre_hook(record) for b in blocks]
        handles.append(blocks.register_forward_hook(count))
        outs = []
        try:
            with torch.inference_mode():
                for chunk in self.chunks:
                    current = []
                    outs.append(self._forward(chunk))
                    self.inputs.append(current)
        finally:
            for h in handles:
                h.remove()
        if calls[0] != len(self.chunks) or any(len(c) != len(blocks) for c in self.inputs):
            logger.info("%s is not called once per forward: no suffix caching",
                        self.blocks_name)
            self.blocks_name, self.inputs, self.outputs = None, [], []
        return torch.cat(outs)

    def _start_of(self, unit: Unit) -> int:
        if self.blocks_name is None:
            return -1
        owner = unit.module_name
        prefix = f"{self.blocks_name}."
        if owner.startswith(prefix):
            children = [n for n, _ in self._blocks.named_children()]
            return children.index(owner[len(prefix):].split(".")[0])
        return self.n_blocks if self._runs_after_blocks(owner) else -1

    def _runs_after_blocks(self, owner: str) -> bool:
        order: list[str] = []
        targets = {owner: self.model.get_submodule(owner), self.blocks_name: self._blocks}
        handles = [m.register_forward_pre_hook(lambda *_, n=n: order.append(n))
                   for n, m in targets.items()]
        try:
            with torch.inference_mode():
                call_model(self.model, first_samples(self.chunks[0], 1))
        finally:
            for h in handles:
                h.remove()
        return order.index(owner) > order.index(self.blocks_name)  # type: ignore[arg-type]
