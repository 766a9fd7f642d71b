"""load(): shipped analytic tables, saved measured tables, foreign machines, clear misses."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mixprec import models, quant
from mixprec.cost_models import ForeignMachineWarning, analytic_table, load
from mixprec.cost_models.store import all_tables, table_filename
from tests.cost_models.test_table import small_table


def test_shipped_analytic_tables_are_what_the_model_computes_today():
    table = load("a15", "mnist-vit", batch=8)
    units = quant.discover_units(models.load("mnist-vit"), torch.zeros(1, 1, 28, 28))
    assert table == analytic_table(units, "a15", 8, model_name="mnist-vit")


def test_every_shipped_table_loads():
    shipped = all_tables()
    names = {t.provenance.get("model_name") for _, t in shipped}
    assert {"mnist-vit", "deit_small_patch16_224", "deit_base_patch16_224",
            "vit_base_patch16_224", "swin_tiny_patch4_window7_224"} <= names
    assert {(t.device, t.batch) for _, t in shipped if t.source == "analytic"} >= \
        {(d, b) for d in ("a100", "a15", "xeon") for b in (1, 8)}


def test_a_table_measured_here_comes_before_a_shipped_one_of_the_same_machine(tmp_path,
                                                                            monkeypatch):
    from mixprec.cost_models import store
    from mixprec.kernels.cpu.capabilities import cpu_fingerprint

    shipped, saved = tmp_path / "shipped", tmp_path / "saved"
    monkeypatch.setattr(store, "shipped_dir", lambda: shipped)
    monkeypatch.setattr(store, "saved_dir", lambda: saved)
    units = quant.discover_units(models.load("mnist-vit"), torch.zeros(1, 1, 28, 28))
    here = cpu_fingerprint(2).key
    older = dataclasses.replace(
        analytic_table(units, "a15", 1, model_name="mnist-vit"), device="cpu",
        provenance={"source": "measured", "cpu_key": here, "model_name": "mnist-vit"})
    newer = older.rescaled(0.5)
    older.save(shipped / table_filename(older))
    newer.save(saved / table_filename(newer))
    assert load("cpu", "mnist-vit") == newer


def test_a_measured_table_of_a_target_class_comes_before_its_analytic_one(tmp_path):
    units = quant.discover_units(models.load("mnist-vit"), torch.zeros(1, 1, 28, 28))
    analytic = analytic_table(units, "xeon", 1, model_name="mnist-vit")
    measured = dataclasses.replace(
        analytic, provenance={"source": "measured", "cpu_key": "0123456789ab",
                              "model_name": "mnist-vit"})
    for table in (analytic, measured):
        table.save(tmp_path / table_filename(table))
    assert load("xeon", "mnist-vit", batch=1, folders=[tmp_path]) == measured
    (tmp_path / table_filename(measured)).unlink()
    assert load("xeon", "mnist-vit", batch=1, folders=[tmp_path]) == analytic


def test_a_missing_table_says_how_to_measure_one(tmp_path):
    with pytest.raises(LookupError, match="mixprec measure --model nothing-like-it"):
        load("cpu", "nothing-like-it", folders=[tmp_path])


def test_a_table_from_another_machine_warns_or_is_refused(tmp_path):
    foreign = small_table(cpu_key="0123456789ab")
    foreign = dataclasses.replace(foreign, provenance={**foreign.provenance,
                                                       "model_name": "toy"})
    foreign.save(tmp_path / table_filename(foreign))
    with pytest.warns(ForeignMachineWarning, match="toy"):
        assert load("cpu", "toy", folders=[tmp_path]) == foreign
    with pytest.raises(LookupError, match="other machines"):
        load("cpu", "toy", strict=True, folders=[tmp_path])


def test_a_corrupt_file_is_skipped_and_left_alone(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert all_tables([tmp_path]) == []
    assert bad.read_text() == "{"
