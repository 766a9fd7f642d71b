"""A model exported as an ONNX graph, and the deployed model that runs such a graph.

:func:`export_onnx` traces a model (its units already swapped for a runtime's stand-ins) into
ONNX with a dynamic batch axis; :class:`GraphModel` is what the graph runtimes (ONNX Runtime,
OpenVINO) deploy: called like the PyTorch model, it returns what the model returned.
"""

from __future__ import annotations

import io
import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import nn

from mixprec.deploy.outputs import OutputStructure
from mixprec.kernels.ort.ops import MS_DOMAIN, OPSET
from mixprec.quant.inputs import ModelInputs, call_model, first_samples, input_names, tensors

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

BATCH_AXIS = "batch"


class OnnxGraph(NamedTuple):
    """An exported model: the ONNX bytes, the graph's input names (in the order the model
    takes them) and the structure its outputs are put back into."""

    onnx_bytes: bytes
    inputs: list[str]
    outputs: OutputStructure


def export_onnx(model: nn.Module, example: ModelInputs, ms_domain: bool = False,
                fold_constants: bool = True) -> OnnxGraph:
    """``model`` traced on ``example`` into ONNX (dynamic batch axis); the graph returns the
    tensors of the model's output, flat. ``ms_domain``: the model emits ONNX Runtime's
    ``com.microsoft`` operators; ``fold_constants=False`` keeps computations on constants
    (OpenVINO's compressed weights) as nodes."""
    names = input_names(example)
    sample = first_samples(example, 2)
    positional = _Positional(model, names, isinstance(sample, Mapping))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            positional, tuple(tensors(sample)),
            buffer, dynamo=False, opset_version=OPSET,
            custom_opsets={MS_DOMAIN: 1} if ms_domain else None,
            input_names=names, dynamic_axes={n: {0: BATCH_AXIS} for n in names},
            do_constant_folding=fold_constants)
    logger.info("exported ONNX graph: %.1f MB", buffer.tell() / 1e6)
    if positional.structure is None:
        raise RuntimeError("the ONNX export did not call the model")
    return OnnxGraph(buffer.getvalue(), names, positional.structure)


class GraphModel(ABC):
    """A deployed model that runs an exported ONNX graph in a graph runtime.

    Call it like the PyTorch model: it returns what the model returned (a tensor, a tuple, a
    dict, a Hugging Face ``ModelOutput`` with its fields) when built from
    :func:`export_onnx`'s graph; from bare ONNX bytes, a tensor, or a tuple when the graph
    has several outputs. ``deploy_report`` says what was built. Subclasses run the graph
    (:meth:`run_arrays`).

    Args:
        onnx_bytes: the serialized ONNX model.
        inputs: the graph's input names, in the order the model takes them.
        threads: intra-op threads of the runtime.
        outputs: the model output's structure, which the graph's outputs are put back into.
    """

    def __init__(self, onnx_bytes: bytes, inputs: Sequence[str], threads: int,
                 outputs: OutputStructure | None = None) -> None:
        self.onnx_bytes = onnx_bytes
        self.inputs = list(inputs)
        self.threads = threads
        self.outputs = outputs
        self.deploy_report: Any = None

    @abstractmethod
    def run_arrays(self, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs for its inputs by name."""

    def __call__(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> Any:
        feeds = dict(zip(self.inputs, args))
        feeds.update(kwargs)
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise ValueError(f"missing model input(s) {missing}; the graph takes {self.inputs}")
        arrays = {name: _as_array(value) for name, value in feeds.items()}
        outputs = [torch.from_numpy(np.array(o)) for o in self.run_arrays(arrays)]
        if self.outputs is not None:
            return self.outputs.rebuild(outputs)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    @classmethod
    def of(cls, graph: OnnxGraph, threads: int) -> Self:
        """The runtime on an exported graph, returning what the model returned."""
        return cls(graph.onnx_bytes, graph.inputs, threads, graph.outputs)

    def eval(self) -> Self:
        """No-op (a graph runtime always runs in inference mode)."""
        return self

    def save(self, path: str | Path) -> Path:
        """Write the ONNX model to ``path``."""
        path = Path(path)
        path.write_bytes(self.onnx_bytes)
        return path


def graph_runtime(runtime: str) -> type[GraphModel]:
    """The deployed-model class of a graph runtime (``onnxruntime``, ``openvino``).

    Raises:
        ValueError: a runtime that does not run ONNX graphs.
    """
    if runtime == "onnxruntime":
        from mixprec.deploy.onnx_runtime import OrtModel

        return OrtModel
    if runtime == "openvino":
        from mixprec.deploy.openvino_runtime import OvModel

        return OvModel
    raise ValueError(f"runtime {runtime!r} does not run ONNX graphs; graph runtimes: "
                     "onnxruntime, openvino")


class _Positional(nn.Module):
    """Takes the inputs positionally, in ``input_names`` order (as the exporter passes
    them), calls the model as it expects them (keywords for dict inputs) and returns its
    output's tensors, flat, keeping the output's structure."""

    def __init__(self, model: nn.Module, names: list[str], keywords: bool) -> None:
        super().__init__()
        self.model, self.names, self.keywords = model, names, keywords
        self.structure: OutputStructure | None = None

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs: ModelInputs = dict(zip(self.names, args)) if self.keywords else \
            (args[0] if len(args) == 1 else args)
        output = call_model(self.model, inputs)
        self.structure = OutputStructure.of(output)
        return OutputStructure.flatten(output)


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().contiguous().numpy()
    return np.asarray(value)
