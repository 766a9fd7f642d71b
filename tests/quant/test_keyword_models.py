"""Models called with keyword inputs (Hugging Face): discovery, calibration, simulation,
sensitivity and deploy take a dict of batched tensors (small random models)."""

from __future__ import annotations

import pytest
import torch

from mixprec import deploy, kernels, quant, sensitivity
from mixprec.quant import Plan, QuantSpec

transformers = pytest.importorskip("transformers")

W8A8_DYNAMIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic")
W8A8_STATIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="static")
FP32 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64,
                                     max_position_embeddings=40)
    model = transformers.BertModel(config).eval()
    ids = torch.randint(5, 300, (24, 16))
    mask = torch.ones_like(ids)
    mask[:, 12:] = 0
    return model, {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="module")
def hf_vit():
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=16, patch_size=4, hidden_size=32,
                                    num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, num_labels=5)
    return transformers.ViTForImageClassification(config).eval(), \
        {"pixel_values": torch.randn(12, 3, 16, 16)}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1)).mean().item()


def test_bert_units_and_simulation(bert):
    model, inputs = bert
    units = quant.discover_units(model, {k: v[:1] for k, v in inputs.items()})
    kinds = [u.kind for u in units]
    assert kinds.count("linear") == 13 and kinds.count("attn_qk") == 2
    assert units.input_shape == (16,)
    calib, test = ({k: v[:16] for k, v in inputs.items()}, {k: v[16:] for k, v in inputs.items()})
    sim = quant.simulate(model, Plan.uniform(units, W8A8_STATIC), calib)
    with torch.inference_mode():
        want, got = model(**test).last_hidden_state, sim(**test).last_hidden_state
    assert cosine(got, want) >= 0.99 and not torch.equal(got, want)


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "openvino"])
def test_bert_deploys_in_every_runtime(bert, runtime):
    model, inputs = bert
    calib = {k: v[:16] for k, v in inputs.items()}
    test = {k: v[16:] for k, v in inputs.items()}
    units = quant.discover_units(model, {k: v[:1] for k, v in inputs.items()})
    specs = [s for s in kernels.candidates("cpu", "linear", runtime) if s.quantizes_acts]
    spec = W8A8_DYNAMIC if W8A8_DYNAMIC in specs else specs[0]
    plan = Plan.uniform(units, FP32).replace(  # OpenVINO without VNNI: float attention
        {u.name: spec for u in units if kernels.kernel_for(u.kind, spec, "cpu", runtime)})
    sim = quant.simulate(model, plan, calib, units=units)
    real = deploy(model, plan, calib=calib, units=units, runtime=runtime)
    with torch.inference_mode():
        want = sim(**test)
        got = real(**test)
    assert type(got) is type(want) and list(got.keys()) == list(want.keys())
    assert cosine(got.last_hidden_state, want.last_hidden_state) >= 0.999
    assert cosine(got.pooler_output, want.pooler_output) >= 0.99


def test_bert_peer_returns_the_model_output(bert):
    from mixprec.deploy.peers import ort_quantize_dynamic

    model, inputs = bert
    peer = ort_quantize_dynamic(model, {k: v[:4] for k, v in inputs.items()}, threads=1)
    with torch.inference_mode():
        want, got = model(**inputs), peer(**inputs)
    assert type(got) is type(want)
    assert cosine(got.last_hidden_state, want.last_hidden_state) >= 0.9  # int8 of random weights


def test_hf_vit_sensitivity_and_deploy(hf_vit):
    model, inputs = hf_vit
    units = quant.discover_units(model, {"pixel_values": inputs["pixel_values"][:1]})
    assert units[0].kind == "conv_gemm" and units[-1].name == "classifier"
    table = sensitivity.estimate(model, units, [W8A8_STATIC, W8A8_DYNAMIC], inputs,
                                 method="sqnr_global")
    assert len(table.scores) == len(units) and all(s >= 0 for row in table.scores for s in row)
    plan = Plan.uniform(units, W8A8_STATIC)
    with torch.inference_mode():
        want = quant.simulate(model, plan, inputs)(**inputs).logits
    onnx = deploy(model, plan, calib=inputs, runtime="onnxruntime")
    assert cosine(onnx(**inputs).logits, want) >= 0.999
    real = deploy(model, plan, calib=inputs)  # reads .weight.dtype of its patch embedding
    with torch.inference_mode():
        assert cosine(real(**inputs).logits, want) >= 0.999
