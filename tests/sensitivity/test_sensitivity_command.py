"""The ``mixprec sensitivity`` subcommand."""

from __future__ import annotations

import argparse
import json
from importlib import resources

import pytest

from mixprec.cli.sensitivity import register

needs_checkpoint = pytest.mark.skipif(
    not resources.files("mixprec.data").joinpath("mnist_vit.pt").is_file(),
    reason="embedded MNIST ViT checkpoint not present")


@needs_checkpoint
def test_command_writes_a_table(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "sens.json"
    args = parser.parse_args(["sensitivity", "--method", "sqnr_local", "--calib-size", "8",
                              "--candidates", "w8a8", "w4a4-dynamic", "--out", str(out)])
    assert args.func(args) == 0
    data = json.loads(out.read_text())
    assert data["method"] == "sqnr_local" and data["labels"] == ["W8A8-static", "W4A4-dynamic"]
    assert "sqnr_local" in capsys.readouterr().out
