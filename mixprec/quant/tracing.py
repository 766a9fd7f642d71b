"""Helpers for tracing a forward pass: which module runs, attention in SDPA form."""

from __future__ import annotations

from torch import nn


class ModuleStack:
    """Tracks which module is executing (innermost first) during one forward pass."""

    def __init__(self, model: nn.Module) -> None:
        self._model = model
        self._stack: list[str] = []
        self._handles: list = []

    def current(self) -> str:
        if not self._stack:
            raise RuntimeError("scaled_dot_product_attention called outside any module")
        return self._stack[-1]

    def __enter__(self) -> ModuleStack:
        for name, mod in self._model.named_modules():
            self._handles.append(mod.register_forward_pre_hook(self._push(name)))
            self._handles.append(mod.register_forward_hook(self._pop, always_call=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _push(self, name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            self._stack.append(name)
        return hook

    def _pop(self, module: nn.Module, args: tuple, output: object) -> None:
        # always_call hooks also run when a forward raised before its pre-hook pushed
        if self._stack:
            self._stack.pop()


class fused_attention:
    """Context: force ``fused_attn=True`` on timm attention modules, restore on exit."""

    def __init__(self, model: nn.Module) -> None:
        self._mods = [m for m in model.modules() if hasattr(m, "fused_attn")]
        self._saved: list[bool] = []

    def __enter__(self) -> None:
        self._saved = [m.fused_attn for m in self._mods]
        for m in self._mods:
            m.fused_attn = True

    def __exit__(self, *exc: object) -> None:
        for m, flag in zip(self._mods, self._saved):
            m.fused_attn = flag
