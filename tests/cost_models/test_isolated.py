"""Anchors: a unit's float time alone."""

from __future__ import annotations

import pytest
import torch

from mixprec.cost_models.isolated import _Sdpa, isolated_ms
from mixprec.deploy import onnx_graph
from mixprec.quant.sdpa import SdpaCall


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_graph_runtime_anchor_feeds_strided_captures_without_a_copy_per_call(runtime,
                                                                            monkeypatch):
    qkv = torch.randn(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)  # q, k, v as views, like timm's
    q, k, v = qkv.unbind(0)
    assert not q.is_contiguous()
    seen = []
    real = onnx_graph._as_array

    def recording(value):
        if isinstance(value, torch.Tensor):
            seen.append(value.is_contiguous())
        return real(value)

    monkeypatch.setattr(onnx_graph, "_as_array", recording)
    call = SdpaCall(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                    enable_gqa=False)
    timing = isolated_ms(_Sdpa(call), (q, k, v), runtime, threads=1, repeats=4, warmup=1)
    assert timing.repeats == 4 and timing.median_ms >= 0
    assert seen and all(seen)
