"""Units: the quantizable GEMMs of a model, found by running it once."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from mixprec.quant.inputs import ModelInputs, call_model, check_inputs, sample_count, sample_shape
from mixprec.quant.sdpa import SdpaCall, intercept_sdpa
from mixprec.quant.tracing import ModuleStack, fused_attention

logger = logging.getLogger(__name__)

UNIT_KINDS = ("linear", "conv_gemm", "attn_qk", "attn_pv")
QK_SUFFIX = ".qk"
PV_SUFFIX = ".pv"

@dataclass(frozen=True)
class Unit:
    """One quantizable GEMM, with its dimensions per image.

    Attributes:
        name: module FQN, or ``<attention FQN>.qk`` / ``.pv`` for attention matmuls.
        kind: ``linear``, ``conv_gemm``, ``attn_qk`` or ``attn_pv``.
        m: rows per GEMM (tokens).
        k: reduction dimension.
        n: output columns.
        groups: independent GEMMs of this shape per image (heads x windows for attention).
        params: weight parameters (0 for attention matmuls).
        heads: attention heads (0 for weight GEMMs).
    """

    name: str
    kind: Literal["linear", "conv_gemm", "attn_qk", "attn_pv"]
    m: int
    k: int
    n: int
    groups: int = 1
    params: int = 0
    heads: int = 0

    def __post_init__(self) -> None:
        if self.kind not in UNIT_KINDS:
            raise ValueError(f"unit {self.name!r}: kind={self.kind!r} not in {UNIT_KINDS}")

    @property
    def is_attention(self) -> bool:
        """Whether this is an attention matmul (both operands are activations)."""
        return self.kind in ("attn_qk", "attn_pv")

    @property
    def module_name(self) -> str:
        """FQN of the module that executes this unit."""
        for suffix in (QK_SUFFIX, PV_SUFFIX):
            if self.is_attention and self.name.endswith(suffix):
                return self.name[: -len(suffix)]
        return self.name

    @property
    def macs(self) -> int:
        """Multiply-accumulates per image."""
        return self.m * self.k * self.n * self.groups

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return asdict(self)


class UnitList(list):
    """The units of a model in execution order, plus what discovery could not cover.

    Attributes:
        model_id: fingerprint of the model's class and parameter shapes.
        input_shape: per-image input shape used for discovery.
        skipped: module FQN -> reason, for parameterised modules left in float.
    """

    def __init__(self, units: list[Unit], model_id: str, input_shape: tuple[int, ...],
                 skipped: dict[str, str]) -> None:
        super().__init__(units)
        self.model_id = model_id
        self.input_shape = tuple(input_shape)
        self.skipped = dict(skipped)

    def by_name(self) -> dict[str, Unit]:
        """Mapping unit name -> Unit."""
        return {u.name: u for u in self}


def model_fingerprint(model: nn.Module) -> str:
    """A stable id of a model's architecture: class name + hash of parameter names/shapes."""
    digest = hashlib.sha256()
    for name, p in model.state_dict().items():
        digest.update(f"{name}:{tuple(p.shape)};".encode())
    return f"{type(model).__name__}-{digest.hexdigest()[:12]}"


def discover_units(model: nn.Module, example_input: ModelInputs) -> UnitList:
    """Find every quantizable GEMM of ``model`` by running ``example_input`` through it.

    Units are every ``nn.Linear`` (``linear``), every ``nn.Conv2d`` with ``groups=1``
    (``conv_gemm``, e.g. the patch embedding) and the two matmuls of every module that calls
    ``F.scaled_dot_product_attention`` (timm ``Attention``, Swin ``WindowAttention``, ...).
    Parameterised modules of other types are reported in ``.skipped`` and logged.

    Args:
        model: the model; it is not modified (attention modules' ``fused_attn`` flags are
            set during the pass and restored).
        example_input: a batch of inputs, e.g. ``torch.randn(1, 3, 224, 224)``, or a tuple
            or dict of batched tensors for models called with several (keyword) inputs.

    Returns:
        The units in execution order.
    """
    try:
        check_inputs(example_input, "example_input")
    except (TypeError, ValueError) as err:
        raise ValueError(f"{err}: pass a batch, e.g. shape (1, 3, 224, 224), or a dict of "
                         "batched tensors") from err
    batch = sample_count(example_input)
    found: dict[str, Unit] = {}
    names = {m: n for n, m in model.named_modules()}
    handles = [mod.register_forward_pre_hook(_gemm_hook(names[mod], batch, found))
               for mod in model.modules() if _gemm_kind(mod) is not None]
    stack = ModuleStack(model)

    def on_sdpa(call: SdpaCall) -> torch.Tensor:
        owner = stack.current()
        _record_attention(owner, call, batch, found)
        return call.run_original()

    try:
        with stack, fused_attention(model), intercept_sdpa(on_sdpa), torch.inference_mode():
            call_model(model, example_input)
    finally:
        for h in handles:
            h.remove()
    skipped = _unsupported_modules(model)
    for name, reason in skipped.items():
        logger.warning("module %s is not quantized: %s", name, reason)
    return UnitList(list(found.values()), model_fingerprint(model),
                    sample_shape(example_input), skipped)


def _gemm_kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Conv2d) and module.groups == 1:
        return "conv_gemm"
    return None


def _gemm_hook(name: str, batch: int, found: dict[str, Unit]):
    def hook(module: nn.Module, args: tuple) -> None:
        if name in found:
            return
        x = args[0]
        if isinstance(module, nn.Linear):
            k, n = module.in_features, module.out_features
            m = x.numel() // (k * batch)
            found[name] = Unit(name, "linear", m, k, n, params=module.weight.numel())
        else:
            kh, kw = module.kernel_size
            k = module.in_channels * kh * kw
            padding = module.padding if isinstance(module.padding, tuple) else (0, 0)
            out_hw = conv_output_hw(x.shape[-2:], module.kernel_size, module.stride, padding,
                                    module.dilation)
            found[name] = Unit(name, "conv_gemm", out_hw[0] * out_hw[1], k, module.out_channels,
                               params=module.weight.numel())
    return hook


def conv_output_hw(hw: tuple[int, int], kernel_size: tuple[int, ...], stride: tuple[int, ...],
                   padding: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, int]:
    """Output height and width of a 2-D convolution with numeric padding."""
    out = []
    for i in range(2):
        span = dilation[i] * (kernel_size[i] - 1) + 1
        out.append((hw[i] + 2 * padding[i] - span) // stride[i] + 1)
    return out[0], out[1]


def _record_attention(owner: str, call: SdpaCall, batch: int, found: dict[str, Unit]) -> None:
    qk_name, pv_name = owner + QK_SUFFIX, owner + PV_SUFFIX
    if qk_name in found:
        return
    q, k, v = call.q, call.k, call.v
    heads = q.shape[-3] if q.dim() >= 3 else 1
    groups = q[..., 0, 0].numel() // batch
    n_q, d, n_k, d_v = q.shape[-2], q.shape[-1], k.shape[-2], v.shape[-1]
    found[qk_name] = Unit(qk_name, "attn_qk", n_q, d, n_k, groups=groups, heads=heads)
    found[pv_name] = Unit(pv_name, "attn_pv", n_q, n_k, d_v, groups=groups, heads=heads)


def _unsupported_modules(model: nn.Module) -> dict[str, str]:
    skipped = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d) and mod.groups != 1:
            skipped[name] = f"grouped Conv2d (groups={mod.groups}) has no GEMM kernel"
        elif isinstance(mod, _UNSUPPORTED_GEMMS):
            skipped[name] = f"{type(mod).__name__} is not a supported module type"
    return skipped


_UNSUPPORTED_GEMMS = (nn.Conv1d, nn.Conv3d, nn.ConvTranspose2d, nn.MultiheadAttention,
                      nn.Bilinear, nn.RNNBase)
