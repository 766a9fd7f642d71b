"""Study recipes: the shipped ones load, bad ones are refused with the field named, and a
recipe runs to a comparison table."""

from __future__ import annotations

import json

import pytest

from mixprec.cli import main
from mixprec.studies import load_recipe, recipe_names


def test_shipped_recipes_load_and_cover_the_thesis_comparison():
    names = recipe_names()
    assert {"thesis-mnist-vit-cpu", "thesis-deit-small-a100", "thesis-deit3-small-a100",
            "thesis-swin-tiny-a100"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert {"int8 static", "int8 dynamic", "hq", "searched"} <= set(recipe.compare)


@pytest.mark.parametrize("body, message", [
    ('title = "t"\ndescription = ""\nmodel = "m"\ndevice = "cpu"\ncompare = ["fp32"]\n'
     'colour = 1\n', "unknown field"),
    ('title = "t"\ndescription = ""\nmodel = "m"\ndevice = "cpu"\ncompare = ["best"]\n',
     "cannot compare"),
    ('title = "t"\ndescription = ""\nmodel = "m"\ndevice = "cpu"\ncompare = ["searched"]\n',
     "needs budgets"),
    ('title = "t"\nmodel = "m"\ndevice = "cpu"\ncompare = ["fp32"]\n', "description"),
    ('title = \n', "not valid TOML"),
])
def test_bad_recipes_name_the_problem(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ValueError, match=message):
        load_recipe(path)


def test_unknown_recipe_lists_the_shipped_ones():
    with pytest.raises(LookupError, match="thesis-mnist-vit-cpu"):
        load_recipe("nope")


def test_recipe_runs_to_a_comparison_table(tmp_path, capsys):
    recipe = tmp_path / "small.toml"
    recipe.write_text('title = "small"\ndescription = "test"\nmodel = "mnist-vit-small"\n'
                      'device = "a15"\neval_size = 200\n'
                      'compare = ["fp32", "int8 static", "int8 dynamic", "hq", "searched"]\n'
                      'budgets = [0.7, 0.9]\n')
    out = tmp_path / "study"
    assert main(["study", "run", str(recipe), "--out", str(out), "--quiet", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [r["plan"] for r in rows]
    assert names[:4] == ["fp32", "int8 static", "int8 dynamic", "hq"]
    assert any(n.startswith("searched @ 0.9") for n in names)
    fp32 = rows[0]
    assert fp32["speedup"] == 1.0 and fp32["accuracy_kind"] == "top-1 (simulated)"
    assert all(0.5 < r["accuracy"] <= 1.0 for r in rows)
    for r in rows[1:]:  # every quantized plan is predicted faster than float on the A15
        assert r["latency_ms"] < fp32["latency_ms"]
    searched = [r for r in rows if r["plan"].startswith("searched")]
    assert all(r["latency_ms"] <= float(r["plan"].split()[2]) * fp32["latency_ms"]
               for r in searched)
    assert (out / "comparison.md").read_text().count("\n| ") == len(rows) + 1
    assert (out / "search" / "plan.json").exists()
