"""search.run on the small embedded model: budgets, fronts, limits, errors, the run folder."""

import json

import pytest
import torch

from mixprec import cost_models, search
from mixprec.cost_models.store import save_measured
from mixprec.cost_models.table import LatencyTable
from mixprec.kernels.cpu.capabilities import cpu_fingerprint
from mixprec.quant import load_plan


@pytest.fixture(scope="module")
def a15(mnist_model):
    return search.run(mnist_model, device="a15", devices=["a100"])


def _dominated(points):
    pairs = [(p.latency_ms, p.error) for p in points]
    return [a for a in pairs if any(b[0] <= a[0] and b[1] <= a[1] and b != a for b in pairs)]


def test_front_is_non_dominated_fastest_first_and_ends_at_the_most_accurate(a15):
    front = a15.front
    assert len(front) >= 10
    assert not _dominated(front)
    assert [p.latency_ms for p in front] == sorted(p.latency_ms for p in front)
    assert a15.plan == front[-1].plan and a15.error == min(p.error for p in front)
    assert set(a15.fronts) == {"a15", "a100"} and a15.tables["a100"].device == "a100"
    assert a15.tables["a15"].source == "analytic"


def test_budget_gives_the_most_accurate_plan_within_it(mnist_model, a15):
    lats = [p.latency_ms for p in a15.front]
    for frac in (0.1, 0.4, 0.8):
        budget = lats[0] + frac * (lats[-1] - lats[0])
        result = search.run(mnist_model, budget, device="a15")
        assert result.latency_ms <= budget
        best = min(p.error for p in a15.front if p.latency_ms <= budget)
        assert result.error == pytest.approx(best, rel=1e-6, abs=1e-12)
        assert cost_models.predict_latency(result.plan, result.tables["a15"]) == \
            pytest.approx(result.latency_ms)


def test_highs_and_cbc_choose_equally_good_plans(mnist_model, a15):
    budget = (a15.front[0].latency_ms + a15.front[-1].latency_ms) / 2
    cbc = search.run(mnist_model, budget, device="a15", solver="cbc")
    highs = search.run(mnist_model, budget, device="a15", solver="highs")
    assert highs.error == pytest.approx(cbc.error, rel=1e-6, abs=1e-12)


def test_infeasible_budget_states_the_fastest_latency(mnist_model, a15):
    with pytest.raises(ValueError, match=r"fastest plan takes [0-9.]+ ms"):
        search.run(mnist_model, a15.front[0].latency_ms * 0.5, device="a15")


def test_size_counts_every_parameter_biases_included(mnist_model):
    """float32 is every parameter at 4 bytes (the units' biases stay float32 too)."""
    float_mb = sum(p.numel() for p in mnist_model.parameters()) * 4 / 1e6
    with pytest.raises(search.InfeasibleError, match=rf"float32 needs {float_mb:.2f} MB"):
        search.run(mnist_model, None, device="a15", size_mb=0.01)


def test_size_limit_is_honoured_along_the_front(mnist_model, a15):
    sizes = sorted({round(_size(a15, p.plan), 6) for p in a15.front})
    limit = sizes[len(sizes) // 2]
    result = search.run(mnist_model, None, device="a15", size_mb=limit)
    assert all(_size(result, p.plan) <= limit + 1e-9 for p in result.front)
    assert not _dominated(result.front)


def _size(result, plan):
    from mixprec.search.problem import stored_bits

    units = {u.name: u for u in result.tables["a15"].units}
    return sum(units[n].params * stored_bits(s) / 8e6 for n, s in plan.specs)


def test_max_drop_returns_a_plan_whose_measured_drop_is_within_it(mnist_model):
    result = search.run(mnist_model, device="a15", max_drop=0.01)
    tried = result.measured["tried"]
    chosen = [t for t in tried if t["latency_ms"] == result.latency_ms]
    assert chosen and result.measured["float_top1"] - chosen[0]["top1"] <= 0.01


def test_bad_inputs_are_named(mnist_model):
    with pytest.raises(ValueError, match="calib"):
        search.run(torch.nn.Sequential(torch.nn.Linear(4, 4)), device="a15")
    with pytest.raises(ValueError, match="tpu"):
        search.run(mnist_model, device="tpu")
    with pytest.raises(TypeError, match="nn.Module"):
        search.run(42, device="a15")
    for bad in (-5.0, 0.0, float("nan")):
        with pytest.raises(ValueError, match="budget_ms must be a positive"):
            search.run(mnist_model, budget_ms=bad, device="a15")


def _a15_table_as_measured_here(a15, monkeypatch) -> None:
    """Save the a15 table as if measured on this CPU (torch, 2 threads); measuring fails."""
    data = a15.tables["a15"].to_dict()
    data.update(device="cpu", runtime="torch", threads=2)
    data["provenance"] = {**data["provenance"], "source": "measured",
                          "cpu_key": cpu_fingerprint(2).key, "model_name": "mnist-vit-small"}
    save_measured(LatencyTable.from_dict(data))
    monkeypatch.setattr(cost_models, "measure", _no_measuring)


def test_cpu_uses_the_table_of_this_machine(mnist_model, a15, monkeypatch):
    _a15_table_as_measured_here(a15, monkeypatch)
    result = search.run(mnist_model, device="cpu", runtime="torch")
    assert result.runtime == "torch" and result.tables["cpu"].source == "measured"
    assert [p.latency_ms for p in result.front] == [p.latency_ms for p in a15.front]


def test_verify_returns_the_best_measured_plan(mnist_model, a15, monkeypatch):
    """The measured choice on this CPU: plans around the solver's choice, the baselines and
    torch's one-line peer deployed and timed; the returned plan is a measured row that no
    measured plan beats on both latency and top-1."""
    from mixprec.cost_models.timing import TimingPolicy

    _a15_table_as_measured_here(a15, monkeypatch)
    budget = (a15.front[0].latency_ms + a15.front[-1].latency_ms) / 2
    result = search.run(mnist_model, budget, device="cpu", runtime="torch", verify=True,
                        side=1, timing=TimingPolicy(repeats=1, warmup=0, min_rounds=2,
                                                    max_rounds=2))
    verified = result.measured["verified"]
    rows = {r["name"]: r for r in result.measured["deployed"]}
    assert {"fp32", "int8 static", "torch.ao dynamic int8"} <= set(rows)
    chosen = rows[verified["chosen"]]
    plans = [r for r in rows.values() if r["role"] != "peer"]
    within = [r for r in plans if r["latency_ms"] <= budget]
    assert chosen["role"] != "peer" and result.plan == _plan_of(result, verified["chosen"])
    if within:  # the most accurate measured within the budget, the faster on a tie
        assert chosen in within
        assert chosen["top1"] == max(r["top1"] for r in within)
    assert not [r for r in plans if r is not chosen and r["latency_ms"] <= chosen["latency_ms"]
                and r["top1"] >= chosen["top1"] and r["latency_ms"] < chosen["latency_ms"]]
    assert verified["learned"] == 0  # a table without its design timings is not refitted
    with pytest.raises(ValueError, match="device must be 'cpu'"):
        search.run(mnist_model, device="a15", verify=True)


def _plan_of(result, name: str):
    """The plan of a measured row: a baseline's, or a front plan's (``front #k``)."""
    if name in result.baselines["cpu"]:
        return result.baselines["cpu"][name].plan
    return result.front[int(name.split("#")[1])].plan


def _no_measuring(*args, **kwargs):
    raise AssertionError("the saved table should have been used")


def test_sensitivity_is_estimated_once_and_cached(mnist_model, monkeypatch, a15):
    from mixprec.search import sensitivity_cache

    monkeypatch.setattr(sensitivity_cache, "estimate", _no_estimating)
    again = search.run(mnist_model, device="a15")
    assert again.plan == a15.plan


def _no_estimating(*args, **kwargs):
    raise AssertionError("the cached sensitivity table should have been used")


def test_save_writes_the_run_folder(a15, tmp_path):
    out = a15.save(tmp_path / "run")
    assert load_plan(str(out / "plan.json")) == a15.plan
    front = json.loads((out / "front-a15.json").read_text())
    assert len(front) == len(a15.front)
    assert (out / "front-a100.csv").read_text().startswith("latency_ms,error,")
    assert json.loads((out / "result.json").read_text())["front_points"]["a15"] == len(front)
    assert cost_models.load_table(out / "latency-a15.json").device == "a15"


def test_token_splits_are_measured_offered_and_left_out_unless_asked(mnist_model, a15,
                                                                      monkeypatch):
    """With token splits, the CPU table is measured again with the token-split candidates
    and the front offers them; a later search without them, on that table, never does; the
    target classes' analytic tables price them."""
    import dataclasses

    from mixprec.cost_models.table import Entry
    from mixprec.kernels.registry import token_split_candidates

    _a15_table_as_measured_here(a15, monkeypatch)
    splits = token_split_candidates("cpu", "torch")
    asked = []

    def measure_with_splits(model, example, **kwargs):
        asked.extend(kwargs["candidates"])
        table = cost_models.load("cpu", a15.tables["a15"].model_id, runtime="torch")
        extra = tuple(Entry(e.shape, s, e.ms * 1.05, "w8a8_token_split")
                      for s in splits for e in table.entries
                      if e.shape.kind == "linear" and e.spec == dataclasses.replace(
                          s, token_split=None))
        table = dataclasses.replace(table, entries=table.entries + extra)
        save_measured(table)
        return table

    monkeypatch.setattr(cost_models, "measure", measure_with_splits)
    with_splits = search.run(mnist_model, device="cpu", runtime="torch", token_splits=True)
    assert all(s in asked for s in splits)
    used = {p.plan[n] for p in with_splits.front for n in p.plan}
    assert any(s.token_split is not None for s in used)
    monkeypatch.setattr(cost_models, "measure", _no_measuring)
    without = search.run(mnist_model, device="cpu", runtime="torch")
    used = {p.plan[n] for p in without.front for n in p.plan}
    assert not any(s.token_split is not None for s in used)
    with pytest.raises(ValueError, match="'onnxruntime' runs no token-split spec"):
        search.run(mnist_model, device="cpu", runtime="onnxruntime", token_splits=True)
    targets = search.run(mnist_model, device="a15", devices=["a100"], token_splits=True)
    for device in ("a15", "a100"):
        covered = targets.tables[device].candidates("linear")
        assert all(s in covered for s in token_split_candidates(device))
