from mixprec.cli import main


def test_evaluate_prints_accuracies(capsys):
    assert main(["evaluate", "--plans", "fp32", "w8a8"]) == 0
    out = capsys.readouterr().out
    assert "fp32: top-1 0.9" in out and "w8a8: top-1 0.9" in out


def test_units_lists_units(capsys):
    assert main(["units", "--model", "deit_tiny_patch16_224", "--random-weights",
                 "--input-shape", "3x224x224"]) == 0
    out = capsys.readouterr().out
    assert "blocks.11.attn.qk" in out and out.count("\n") == 74


def test_errors_are_reported_not_raised(capsys):
    assert main(["units", "--model", "nope"]) == 2
    assert "no model named 'nope'" in capsys.readouterr().err


def test_an_unknown_model_is_named_before_missing_data(capsys):
    assert main(["search", "--model", "deit_smal_patch16_224", "--device", "a15"]) == 2
    err = capsys.readouterr().err
    assert "no model named 'deit_smal_patch16_224'" in err
    assert "did you mean deit_small_patch16_224" in err and "--data" not in err


def test_a_budget_must_be_positive(capsys):
    for bad in ("-5", "0", "-10%", "nan"):
        try:
            main(["search", "--model", "mnist-vit", "--device", "a15", f"--budget-ms={bad}"])
        except SystemExit as stop:  # argparse refuses it before anything runs
            assert stop.code == 2
        else:
            raise AssertionError(f"--budget-ms {bad} was accepted")
        assert "a budget must be a positive" in capsys.readouterr().err


def test_help_opens_with_what_mixprec_does(capsys):
    try:
        main(["--help"])
    except SystemExit as stop:
        assert stop.code == 0
    out = capsys.readouterr().out
    assert "Find the mixed-precision plan" in out and "one module per" not in out
    assert out.index("search") < out.index("evaluate")


def test_cpu_reports_fingerprint_and_candidates(capsys):
    import json

    assert main(["cpu", "--json", "--threads", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fingerprint"]["threads"] == 2 and report["fingerprint"]["key"]
    for runtime in ("torch", "onnxruntime"):
        linear = report["candidates"][runtime]["linear"]
        assert "W8A8-static" in linear and "W8A8-dynamic" in linear


def test_measure_writes_a_table_that_loads(tmp_path, capsys):
    from mixprec.cost_models import load_table

    out = tmp_path / "small.json"
    assert main(["measure", "--model", "mnist-vit-small", "--candidates", "fp32",
                 "w8a8-dynamic", "--repeats", "1", "--rounds", "2", "--mixes", "4",
                 "--threads", "1", "--quiet",
                 "--cache", str(tmp_path / "cache.json"), "--out", str(out)]) == 0
    table = load_table(out)
    assert table.provenance["model_name"] == "mnist-vit-small" and table.threads == 1
    assert (tmp_path / "small.csv").exists()
    printed = capsys.readouterr().out
    assert "float32 model" in printed and "held-out plans" in printed


def test_search_for_the_xeon_class_works_on_any_machine(tmp_path, capsys):
    import json

    out = tmp_path / "xeon"
    assert main(["search", "--model", "mnist-vit-small", "--device", "xeon", "--budget-ms",
                 "80%", "--out", str(out), "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    table = summary["tables"]["xeon"]
    assert table["source"] == "analytic" and "not measured" in table["trust"]
    assert "analytic" in (out / "report.html").read_text()


def test_measure_refuses_a_target_class(capsys):
    assert main(["measure", "--model", "mnist-vit-small", "--device", "a15", "--quiet"]) == 2
    assert "target class" in capsys.readouterr().err


def test_search_writes_the_run_folder_and_json(tmp_path, capsys):
    import json

    out = tmp_path / "run"
    assert main(["search", "--model", "mnist-vit-small", "--device", "a15", "--budget-ms",
                 "0.8", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["device"] == "a15" and summary["latency_ms"] <= 0.8
    assert {"plan.json", "result.json", "front-a15.csv", "sensitivity.json"} <= {
        p.name for p in out.iterdir()}


def test_search_names_what_is_missing(capsys):
    assert main(["search", "--model", "deit_tiny_patch16_224", "--device", "a15"]) == 2
    assert "--data is required" in capsys.readouterr().err
    assert main(["search", "--worker"]) == 2
    assert "needs --storage and --study" in capsys.readouterr().err
    assert main(["search", "--model", "mnist-vit-small", "--device", "a15", "--budget-ms",
                 "0.01"]) == 3  # no plan meets the limits
    assert "infeasible" in capsys.readouterr().err
