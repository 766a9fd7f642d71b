"""The day-to-day commands on run folders, end to end on the embedded small model:
``search --out`` (deploy and measure here), ``report`` (rendered in headless Chromium),
``export`` (PyTorch and ONNX Runtime), ``dashboard`` (optuna-dashboard over HTTP), and the
exit codes scripts rely on."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mixprec.cli import main
from tests.report.browser import ink_fraction, render

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory) -> tuple[Path, dict]:
    """A search on this CPU (torch runtime), its plans deployed and measured."""
    out = tmp_path_factory.mktemp("runs") / "cpu"
    args = ["search", "--model", "mnist-vit-small", "--device", "cpu", "--runtime", "torch",
            "--out", str(out), "--eval-size", "200", "--rounds", "1", "--front-points", "1",
            "--quiet", "--json"]
    return out, _json_of(args)


@pytest.fixture(scope="module")
def a15_run(tmp_path_factory) -> tuple[Path, dict]:
    """A search for the A15 class (its analytic table) with a 3-trial refinement study."""
    out = tmp_path_factory.mktemp("runs") / "a15"
    args = ["search", "--model", "mnist-vit-small", "--device", "a15", "--budget-ms", "0.8",
            "--refine-trials", "3", "--out", str(out), "--quiet", "--json"]
    return out, _json_of(args)


def _json_of(args: list[str]) -> dict:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(args) == 0
    return json.loads(buffer.getvalue())


def test_search_writes_the_run_folder_and_measures_the_deployed_plans(cpu_run):
    out, summary = cpu_run
    for name in ("plan.json", "front.csv", "front.json", "result.json", "baselines.json",
                 "measured.json", "report.html", "latency-cpu.json", "sensitivity.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "front-cpu.png", "predicted-vs-measured.png", "unit-map.png"]
    deployed = {m["name"]: m for m in summary["measured"]["deployed"]}
    verified = summary["measured"]["verified"]
    assert verified["chosen"] in deployed and verified["predicted"] in deployed
    assert {"fp32", "int8 static", "int8 dynamic", "torch.ao dynamic int8"} <= set(deployed)
    assert deployed["fp32"]["sqnr_db"] is None  # float32 deployed is the model itself in torch
    for m in deployed.values():
        assert m["latency_ms"] > 0 and 0.8 < m["top1"] <= 1.0
        assert m["sqnr_db"] is None or m["sqnr_db"] > 30  # deployed == simulated numbers
    chosen = deployed[verified["chosen"]]
    assert not [m for m in deployed.values() if m["role"] != "peer"
                and m["latency_ms"] < chosen["latency_ms"] and m["top1"] >= chosen["top1"]]
    assert set(verified["relations"]) == {n for n, m in deployed.items()
                                          if m["role"] in ("baseline", "peer")} - {chosen["name"]}
    front = (out / "front.csv").read_text().splitlines()
    assert front[0].startswith("latency_ms,error,patch_embed.proj")
    assert len(front) - 1 == summary["front_points"]["cpu"]


def test_report_renders_in_a_browser_without_script_errors(cpu_run, a15_run, tmp_path):
    for out, _ in (cpu_run, a15_run):
        rendered = render(out / "report.html", tmp_path / f"{out.name}.png")
        assert rendered.js_errors == []
        assert ink_fraction(rendered.screenshot) > 0.03
        assert rendered.dom.count('class="main-svg"') >= 3  # Plotly drew the figures
        assert "Latency tables used" in rendered.dom
    assert "Deployed and measured on this CPU" in (cpu_run[0] / "report.html").read_text()


def test_browser_check_sees_script_errors_and_blank_pages(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    rendered = render(page, tmp_path / "broken.png", size=(400, 300))
    assert any("undefinedFunction" in e for e in rendered.js_errors)
    assert ink_fraction(rendered.screenshot) < 0.01


def test_report_command_rewrites_the_page_and_figures(a15_run, capsys):
    out, _ = a15_run
    (out / "report.html").unlink()
    shutil.rmtree(out / "figures")
    assert main(["report", str(out), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert Path(written["report"]).is_file() and len(written["figures"]) == 2
    page = (out / "report.html").read_text()
    assert "src=\"http" not in page  # self-contained: plotly.js is inlined
    assert "uniform baselines" in page and "analytic" in page


def test_export_torch_reloads_to_identical_outputs(a15_run, capsys):
    out, _ = a15_run
    assert main(["export", str(out), "--format", "torch", "--quiet", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["reloaded_identical"] is True and Path(done["path"]).is_file()
    assert done["sqnr_db"] is None or done["sqnr_db"] > 30


def test_export_onnx_runs_in_onnxruntime_close_to_the_simulation(a15_run, capsys):
    out, _ = a15_run
    assert main(["export", str(out), "--format", "onnx", "--quiet", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["sqnr_db"] >= 30
    assert {"QuantizeLinear"} <= set(done["ops"]) and (
        "MatMulInteger" in done["ops"] or "MatMulIntegerToFloat" in done["ops"])


def test_export_openvino_writes_ir_that_reloads_close_to_the_simulation(a15_run, capsys):
    from mixprec.quant import Plan

    out, _ = a15_run
    assert main(["export", str(out), "--format", "openvino", "--quiet", "--json",
                 "--float-unsupported"]) == 0
    done = json.loads(capsys.readouterr().out)
    path = Path(done["path"])
    assert path.suffix == ".xml" and path.with_suffix(".bin").is_file()
    assert done["sqnr_db"] >= 30
    plan = Plan.from_json((out / "plan.json").read_text())
    dynamic = [n for n, s in plan.specs if s.act_mode == "dynamic"]
    kept = [n for n, s in plan.specs if not s.is_float and n not in done["left_float"]]
    assert set(dynamic) <= set(done["left_float"])
    assert done["ops"].get("FakeQuantize", 0) >= len(kept)  # two or more per integer unit


def test_export_plan_round_trips(a15_run, capsys):
    from mixprec.quant import Plan

    out, _ = a15_run
    assert main(["export", str(out), "--format", "plan", "--quiet"]) == 0
    written = out / "export" / "model.plan.json"
    assert Plan.from_json(written.read_text()) == Plan.from_json((out / "plan.json").read_text())


def test_export_reports_units_without_an_onnx_form(a15_run, tmp_path, capsys):
    from mixprec.quant import Plan, QuantSpec

    folder = tmp_path / "w6"
    shutil.copytree(a15_run[0], folder)
    plan = Plan.from_json((folder / "plan.json").read_text())
    odd = QuantSpec(weight_bits=6, act_bits=6, act_mode="static")
    (folder / "plan.json").write_text(plan.replace({"blocks.1.mlp.fc1": odd}).to_json())
    assert main(["export", str(folder), "--format", "onnx", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "blocks.1.mlp.fc1: W6A6-static" in err and "--float-unsupported" in err
    assert main(["export", str(folder), "--format", "onnx", "--quiet", "--json",
                 "--float-unsupported"]) == 0
    assert json.loads(capsys.readouterr().out)["left_float"] == ["blocks.1.mlp.fc1"]


def test_dashboard_serves_the_run_study(a15_run):
    out, summary = a15_run
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mixprec", "dashboard", str(out),
                               "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        studies = _get_json(f"http://127.0.0.1:{port}/api/studies", server)
        assert summary["study_name"] in [s["study_name"] for s in studies["study_summaries"]]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_dashboard_refuses_a_run_without_a_study(cpu_run, capsys):
    assert main(["dashboard", str(cpu_run[0])]) == 2
    assert "--refine-trials" in capsys.readouterr().err


def test_exit_codes_scripts_can_rely_on(tmp_path, capsys):
    assert main(["search", "--model", "mnist-vit-small", "--device", "a15", "--budget-ms",
                 "0.01", "--quiet", "--no-deploy"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "infeasible" in err and "hint:" in err
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["search", "--model", "deit_tiny_patch16_224", "--quiet"]) == 2
    assert "--data is required" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, server: subprocess.Popen, wait_s: float = 90) -> dict:
    deadline = time.time() + wait_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
                return json.loads(response.read())
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                output = server.stdout.read().decode() if server.stdout else ""
                raise AssertionError(f"dashboard did not answer {url}: {output}") from None
            time.sleep(0.5)


def test_search_takes_a_timm_model_with_weights_and_an_image_folder(tmp_path, capsys):
    """``--model`` a timm name, ``--weights FILE`` and ``--data`` an ImageNet-style folder."""
    import timm
    import torch
    from PIL import Image

    torch.manual_seed(0)
    weights = tmp_path / "deit_tiny.pt"
    torch.save(timm.create_model("deit_tiny_patch16_224").state_dict(), weights)
    rng = torch.Generator().manual_seed(0)
    for label in ("cat", "dog"):
        (tmp_path / "val" / label).mkdir(parents=True)
        for k in range(2):
            pixels = torch.randint(0, 256, (240, 260, 3), generator=rng, dtype=torch.uint8)
            Image.fromarray(pixels.numpy()).save(tmp_path / "val" / label / f"{k}.jpg")
    out = tmp_path / "run"
    assert main(["search", "--model", "deit_tiny_patch16_224", "--weights", str(weights),
                 "--data", str(tmp_path / "val"), "--calib-size", "4", "--device", "a100",
                 "--budget-ms", "90%", "--out", str(out), "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    fp32 = json.loads((out / "baselines.json").read_text())["a100"]["fp32"]["latency_ms"]
    assert summary["latency_ms"] <= 0.9 * fp32 and summary["budget_ms"] == 0.9 * fp32
    assert not summary["measured"].get("deployed")  # an A100 plan is not deployed on the CPU
    recorded = json.loads((out / "result.json").read_text())
    assert recorded["model"] == "deit_tiny_patch16_224" and recorded["weights"] == str(weights)
    assert (out / "report.html").is_file()
