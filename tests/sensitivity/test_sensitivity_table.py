"""SensitivityTable: predict(), refusal of other models / candidate sets, bad input."""

from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from mixprec import quant, sensitivity
from mixprec.quant import Plan, QuantSpec
from mixprec.sensitivity.registry import Estimator, Scores

FLOAT = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")


@pytest.fixture(scope="module")
def table(tiny_model, tiny_units, tiny_calib, candidates):
    return sensitivity.estimate(tiny_model, tiny_units, candidates, tiny_calib,
                                method="sqnr_local")


def test_predict_sums_the_plan(table, tiny_units, candidates):
    plan = Plan.uniform(tiny_units, candidates[0]).replace(
        {"blocks.0.attn.qkv": candidates[2], "head": FLOAT})
    expected = sum(row[0] for name, row in zip(table.units, table.scores)
                   if name not in ("blocks.0.attn.qkv", "head"))
    expected += table.score("blocks.0.attn.qkv", candidates[2])
    assert table.predict(plan) == pytest.approx(expected)
    assert table.predict(Plan.uniform(tiny_units, candidates[2])) > table.predict(plan)


def test_predict_refuses_a_spec_that_is_not_a_candidate(table, tiny_units, candidates):
    other = QuantSpec(weight_bits=6, act_bits=6, act_mode="static")
    plan = Plan.uniform(tiny_units, candidates[0]).replace({"blocks.1.mlp.fc2": other})
    with pytest.raises(KeyError, match=r"blocks\.1\.mlp\.fc2.*W6A6-static"):
        table.predict(plan)
    with pytest.raises(KeyError, match="'nope' is not in the sensitivity table"):
        table.predict(Plan((("nope", candidates[0]),)))


def test_refuses_another_model_or_candidate_set(table, tiny_units, candidates):
    other_model = VisionTransformer(img_size=8, patch_size=4, in_chans=1, num_classes=4,
                                    embed_dim=16, depth=3, num_heads=2).eval()
    other_units = quant.discover_units(other_model, torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="computed for model"):
        table.check(other_units)
    with pytest.raises(ValueError, match="computed for model"):
        table.predict(Plan.uniform(other_units, candidates[0]))
    with pytest.raises(ValueError, match="computed for candidates"):
        table.check(tiny_units, candidates[:2])
    table.check(tiny_units, list(reversed(candidates)))
    with pytest.raises(ValueError, match="same architecture, other model"):
        table.check(weights_digest="0123456789abcdef")


def test_json_is_stable_and_dated_only_from_source_date_epoch(table, tiny_model, tiny_units,
                                                               tiny_calib, candidates,
                                                               monkeypatch, tmp_path):
    assert "date" not in table.provenance
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    dated = sensitivity.estimate(tiny_model, tiny_units, candidates, tiny_calib,
                                 method="sqnr_local")
    assert dated.provenance["date"].startswith("2023-11-14")
    path = tmp_path / "t.json"
    dated.save(str(path))
    assert sensitivity.load_table(str(path)) == dated


def test_bad_candidates_and_calibration(tiny_model, tiny_units, tiny_calib, candidates):
    with pytest.raises(ValueError, match="all-float"):
        sensitivity.estimate(tiny_model, tiny_units, [FLOAT], tiny_calib)
    with pytest.raises(ValueError, match="unique"):
        sensitivity.estimate(tiny_model, tiny_units, [candidates[0]] * 2, tiny_calib)
    bad = tiny_calib.clone()
    bad[3, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        sensitivity.estimate(tiny_model, tiny_units, candidates, bad)


@pytest.mark.filterwarnings("ignore:module forward hook")  # quant.ModuleStack on error
def test_non_finite_values_name_the_unit(tiny_model, tiny_units, tiny_calib, candidates):
    broken = VisionTransformer(img_size=8, patch_size=4, in_chans=1, num_classes=4,
                               embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0).eval()
    broken.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        broken.blocks[1].mlp.fc1.weight[0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match=r"blocks\.1\.mlp\.fc2"):
        sensitivity.estimate(broken, tiny_units, candidates, tiny_calib, method="sqnr_global")


class _NanEstimator(Estimator):
    name = "nan_test"

    def work(self, units, candidates, images):
        return 1

    def score(self, model, units, candidates, calib, stats, seed, progress):
        matrix = [[0.0] * len(candidates) for _ in units]
        matrix[2][1] = float("nan")
        return Scores(matrix)


def test_estimate_reports_nan_scores_with_the_unit(tiny_model, tiny_units, tiny_calib,
                                                   candidates):
    sensitivity.register("nan_test", _NanEstimator)
    try:
        with pytest.raises(FloatingPointError, match=rf"{tiny_units[2].name}.*W8A8-dynamic"):
            sensitivity.estimate(tiny_model, tiny_units, candidates, tiny_calib,
                                 method="nan_test")
    finally:
        from mixprec.sensitivity.registry import unregister
        unregister("nan_test")
