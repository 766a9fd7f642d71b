"""Every registered method: one shared conformance test; method-specific checks."""

from __future__ import annotations

import pytest
import torch

from mixprec import quant, sensitivity
from mixprec.quant import Plan, QuantSpec
from mixprec.sensitivity.suffix import SuffixRunner

FLOAT = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")


@pytest.mark.parametrize("method", sensitivity.available())
def test_conformance(method, tiny_model, tiny_units, tiny_calib, candidates):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    table = sensitivity.estimate(tiny_model, tiny_units, candidates, tiny_calib, method=method,
                                 seed=3, batch_size=5)
    assert table.method == method
    assert table.units == tuple(u.name for u in tiny_units)
    assert table.labels == [c.label for c in candidates]
    scores = torch.tensor(table.scores)
    assert scores.shape == (len(tiny_units), len(candidates))
    assert torch.isfinite(scores).all() and (scores >= 0).all()
    # 4-bit everywhere costs more than 8-bit everywhere
    assert scores[:, 2].sum() > scores[:, 0].sum()
    assert table.predict(Plan.uniform(tiny_units, FLOAT)) == 0.0
    # same seed and data: byte-identical; JSON round trip keeps everything
    again = sensitivity.estimate(tiny_model, tiny_units, candidates, tiny_calib, method=method,
                                 seed=3, batch_size=5)
    assert again.to_json() == table.to_json()
    assert sensitivity.SensitivityTable.from_json(table.to_json()) == table
    prov = table.provenance
    assert prov["seed"] == 3 and prov["calibration_hash"] == quant.calibration_hash(tiny_calib)
    assert {"torch", "timm"} <= set(prov["libraries"])
    # the model is left as it was found
    assert all(torch.equal(v, before[k]) for k, v in tiny_model.state_dict().items())
    assert not any(isinstance(m, torch.nn.Module) and "FakeQuant" in type(m).__name__
                   for m in tiny_model.modules())


def test_create_and_unknown_method():
    assert {"sqnr_local", "sqnr_global", "patch_global", "hessian"} <= set(
        sensitivity.available())
    assert sensitivity.create("sqnr_global", metric="kl").metric == "kl"
    with pytest.raises(ValueError, match="unknown sensitivity method 'nope'"):
        sensitivity.create("nope")


def test_suffix_runner_reproduces_the_float_output(tiny_model, tiny_units, tiny_calib):
    runner = SuffixRunner(tiny_model, tiny_units, tiny_calib, batch_size=5)
    assert runner.blocks_name == "blocks" and runner.n_blocks == 2
    starts = {u.name: runner.start(u) for u in tiny_units}
    assert starts["patch_embed.proj"] == -1 and starts["head"] == 2
    assert starts["blocks.1.attn.qk"] == 1
    for start in (-1, 0, 1, 2):
        assert torch.equal(runner.run(start), runner.reference)


def test_sqnr_global_equals_the_naive_full_forward(tiny_model, tiny_units, tiny_calib,
                                                   candidates):
    table = sensitivity.estimate(tiny_model, tiny_units, candidates, tiny_calib,
                                 method="sqnr_global")
    stats = quant.calibrate(tiny_model, tiny_units, tiny_calib)
    with torch.inference_mode():
        ref = tiny_model(tiny_calib)
    float_plan = Plan.uniform(tiny_units, FLOAT)
    for name in ("blocks.1.mlp.fc1", "blocks.0.attn.pv", "head"):
        spec = candidates[2]
        sim = quant.simulate(tiny_model, float_plan.replace({name: spec}), tiny_calib,
                             units=tiny_units, stats=stats)
        with torch.inference_mode():
            out = sim(tiny_calib)
        naive = ((out - ref).double().pow(2).sum() / ref.double().pow(2).sum()).item()
        assert table.score(name, spec) == pytest.approx(naive, rel=1e-4)


def test_patch_global_token_scores(tiny_model, tiny_units, tiny_calib, candidates):
    table = sensitivity.estimate(tiny_model, tiny_units, candidates, tiny_calib,
                                 method="patch_global")
    linear = [u for u in tiny_units if u.kind == "linear"]
    assert set(table.token_scores) == {u.name for u in linear if u.name != "head"}
    fc1 = table.token_scores["blocks.0.mlp.fc1"][candidates[2].label]
    assert len(fc1) == 5 and all(v >= 0 for v in fc1)  # 4 patches + class token


def test_hybrid_plan(tiny_model, tiny_units, tiny_calib):
    all_static = sensitivity.hybrid_plan(tiny_model, tiny_units, tiny_calib,
                                         tolerance_db=float("inf"))
    all_dynamic = sensitivity.hybrid_plan(tiny_model, tiny_units, tiny_calib,
                                          tolerance_db=float("-inf"))
    assert all_static.names == [u.name for u in tiny_units]
    assert {s.act_mode for s in all_static.as_dict().values()} == {"static"}
    for unit in tiny_units:
        expected = "dynamic" if unit.kind == "linear" else "static"
        assert all_dynamic[unit.name].act_mode == expected
    all_static.check_against(tiny_units)


def test_fidelity_report(tiny_model, tiny_units, tiny_calib, candidates):
    tables = {m: sensitivity.estimate(tiny_model, tiny_units, candidates, tiny_calib, method=m)
              for m in ("sqnr_local", "sqnr_global")}
    labels = torch.randint(0, 4, (12,), generator=torch.Generator().manual_seed(0))
    report = sensitivity.fidelity(tiny_model, tiny_units, tables, tiny_calib, tiny_calib,
                                  labels, n_plans=6, seed=1)
    assert set(report.spearman) == set(tables)
    assert all(len(v) == 6 for v in report.measured.values())
    assert -1.0 <= report.spearman["sqnr_global"]["nsr"] <= 1.0
    assert len(report.lines()) == 3
