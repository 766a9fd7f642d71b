"""The structure of a model's output, kept across an exported graph: the graph returns the
output's tensors, flat; the deployed model puts them back into what the float model returns
(a tensor, a tuple, a dict, a Hugging Face ``ModelOutput`` with its fields)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils import _pytree as pytree  # torch's output flattening; ModelOutput registers


@dataclass(frozen=True)
class OutputStructure:
    """Where a model output's tensors sit in it, and its other leaves (``None``, numbers).

    Attributes:
        spec: the output's tree (containers, field names, classes).
        leaves: every leaf that is not a tensor; ``None`` in a tensor's place.
        is_tensor: per leaf, whether a tensor goes there.
    """

    spec: pytree.TreeSpec
    leaves: tuple[Any, ...]
    is_tensor: tuple[bool, ...]

    @classmethod
    def of(cls, output: Any) -> OutputStructure:
        """The structure of ``output``."""
        leaves, spec = pytree.tree_flatten(output)
        is_tensor = tuple(isinstance(leaf, torch.Tensor) for leaf in leaves)
        return cls(spec, tuple(None if t else leaf for leaf, t in zip(leaves, is_tensor)),
                   is_tensor)

    @property
    def tensors(self) -> int:
        """How many tensors the output holds."""
        return sum(self.is_tensor)

    @staticmethod
    def flatten(output: Any) -> tuple[torch.Tensor, ...]:
        """The tensors of ``output``, in order."""
        return tuple(leaf for leaf in pytree.tree_leaves(output) if isinstance(leaf, torch.Tensor))

    def rebuild(self, tensors: Sequence[torch.Tensor]) -> Any:
        """An output of this structure holding ``tensors``."""
        if len(tensors) != self.tensors:
            raise ValueError(f"the graph returned {len(tensors)} tensors; the model's output "
                             f"holds {self.tensors}")
        given = iter(tensors)
        leaves = [next(given) if t else leaf for leaf, t in zip(self.leaves, self.is_tensor)]
        return pytree.tree_unflatten(leaves, self.spec)
