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
    assert "unknown model" in capsys.readouterr().err
