"""LatencyTable: lookup, prediction, candidates, file checks and machine checks."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import pytest

from mixprec.cost_models import (
    ForeignMachineWarning,
    LatencyTable,
    LatencyTableError,
    NoisyTableWarning,
    latency_breakdown,
    load_table,
    predict_latency,
)
from mixprec.cost_models.measurement import warn_if_inconsistent
from mixprec.cost_models.table import FLOAT32, Entry, ShapeKey, Transition
from mixprec.kernels.cpu.capabilities import cpu_fingerprint
from mixprec.kernels.registry import W8A8_DYNAMIC, W8A8_STATIC
from mixprec.quant import Plan
from mixprec.quant.units import Unit

FC1 = Unit("mlp.fc1", "linear", 10, 8, 32, params=256)
FC2 = Unit("mlp.fc2", "linear", 10, 32, 8, params=256)
QK = Unit("attn.qk", "attn_qk", 10, 4, 10, groups=2)
PV = Unit("attn.pv", "attn_pv", 10, 10, 4, groups=2)
S1, S2, SA = ShapeKey.of(FC1), ShapeKey.of(FC2), ShapeKey.of(QK)


def small_table(cpu_key: str = "") -> LatencyTable:
    """A hand-made table: fc1, fc2 (fp32 / static / dynamic), one attention module."""
    entries = [Entry(S1, FLOAT32, 1.0), Entry(S1, W8A8_STATIC, 0.5), Entry(S1, W8A8_DYNAMIC, 0.7),
               Entry(S2, FLOAT32, 2.0), Entry(S2, W8A8_STATIC, 1.1), Entry(S2, W8A8_DYNAMIC, 1.3),
               Entry(SA, FLOAT32, 3.0, spec2=FLOAT32), Entry(SA, W8A8_STATIC, 2.5, spec2=FLOAT32)]
    chain = Transition(S1, S2, W8A8_STATIC, W8A8_STATIC, -0.25)
    return LatencyTable("cpu", "torch", 1, 2, "toy", (FC1, FC2, QK, PV), entries, 4.0,
                        (chain,), (("mlp.fc1", "mlp.fc2"),),
                        {"source": "measured", "cpu_key": cpu_key or cpu_fingerprint(2).key,
                         "cpu": "test machine"})


def plan(**specs) -> Plan:
    names = [u.name for u in (FC1, FC2, QK, PV)]
    return Plan({n: specs.get(n.replace(".", "_"), FLOAT32) for n in names}, model_id="toy")


def test_prediction_is_remainder_plus_units_plus_transitions():
    table = small_table()
    assert predict_latency(plan(), table) == pytest.approx(4.0 + 1.0 + 2.0 + 3.0)
    mixed = plan(mlp_fc1=W8A8_STATIC, mlp_fc2=W8A8_DYNAMIC, attn_qk=W8A8_STATIC)
    assert predict_latency(mixed, table) == pytest.approx(4.0 + 0.5 + 1.3 + 2.5)
    chained = latency_breakdown(plan(mlp_fc1=W8A8_STATIC, mlp_fc2=W8A8_STATIC), table)
    assert chained.transitions == pytest.approx(-0.25)
    assert chained.total == pytest.approx(4.0 + 0.5 + 1.1 + 3.0 - 0.25)


def test_missing_entry_names_the_unit_and_what_the_table_has():
    with pytest.raises(KeyError, match=r"attn(.|\n)*W8A8-dynamic(.|\n)*has"):
        predict_latency(plan(attn_qk=W8A8_DYNAMIC), small_table())


def test_plan_for_another_model_is_refused():
    other = Plan({"mlp.fc1": FLOAT32}, model_id="other")
    with pytest.raises(ValueError, match="other"):
        predict_latency(other, small_table())


def test_candidates_cover_every_unit_or_one_kind():
    table = small_table()
    assert table.candidates() == [FLOAT32]  # attention PV only has float32
    assert table.candidates("linear") == [FLOAT32, W8A8_STATIC, W8A8_DYNAMIC]
    assert table.candidates("attn_qk") == [FLOAT32, W8A8_STATIC]


def test_json_round_trip_and_csv(tmp_path):
    table = small_table()
    path = table.save(tmp_path / "t.json")
    again = load_table(path)
    assert again == table
    assert predict_latency(plan(), again) == predict_latency(plan(), table)
    csv_text = (tmp_path / "t.csv").read_text()
    assert "W8A8-static" in csv_text and csv_text.strip().splitlines()[-1].startswith("remainder")


def test_truncated_file_is_detected(tmp_path):
    path = small_table().save(tmp_path / "t.json")
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(LatencyTableError, match="corrupt or truncated"):
        load_table(path)


def test_edited_file_fails_its_checksum(tmp_path):
    path = small_table().save(tmp_path / "t.json")
    data = json.loads(path.read_text())
    data["table"]["remainder_ms"] = 0.5
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match="checksum"):
        load_table(path)


def test_a_file_that_failed_to_load_is_never_overwritten(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{not json")
    with pytest.raises(LatencyTableError):
        small_table().save(path)
    assert path.read_text() == "{not json"


def test_foreign_fingerprint_warns_or_refuses_when_strict():
    foreign = small_table(cpu_key="0123456789ab")
    with pytest.warns(ForeignMachineWarning, match="0123456789ab"):
        foreign.check_machine()
    with pytest.raises(ValueError, match="0123456789ab"):
        foreign.check_machine(strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small_table().check_machine(strict=True)  # this machine: silent


def test_a_consistent_measured_table_has_no_inconsistencies():
    assert small_table().inconsistencies() == []


def test_negative_remainder_and_impossible_entries_are_inconsistencies(tmp_path):
    table = small_table()
    noisy = replace(table, remainder_ms=-2.0,
                    entries=(*table.entries[:1], replace(table.entries[1], ms=-0.9),
                             replace(table.entries[2], ms=-0.1), *table.entries[3:]),
                    provenance={**table.provenance, "float32_model_ms": 10.0})
    problems = noisy.inconsistencies()
    assert problems[0] == "remainder -2.000 ms < 0"
    assert len(problems) == 2 and "W8A8-static: -0.900 ms" in problems[1]  # -0.1: noise
    with pytest.warns(NoisyTableWarning, match="remainder -2.000 ms") as caught:
        warn_if_inconsistent(noisy, [tmp_path / "timings.json"])
    assert "timings.json" in str(caught[0].message)
    analytic = replace(noisy, provenance={"source": "analytic"})
    assert analytic.inconsistencies() == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_inconsistent(table, [])
