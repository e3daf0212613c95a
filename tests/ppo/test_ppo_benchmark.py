"""Smoke test of benchmarks/ppo_step.py at toy size (the numbers themselves are not asserted)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "ppo_step.py"


def test_ppo_step_benchmark_writes_every_phase_and_ratio(tmp_path, monkeypatch):
    import advx.plugins

    # The script restricts ADVX_LOAD_PLUGINS and the plugin manager is a process-wide
    # singleton: give it its own for this test, restored (with the environment) afterwards.
    monkeypatch.setenv(
        "ADVX_LOAD_PLUGINS", "seq2seq,cls_loss,ppo,product_relevance,encoder_classifier"
    )
    advx.plugins.reset_plugin_manager()
    spec = importlib.util.spec_from_file_location("ppo_step_benchmark", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "ppo_step.json"
    sizes = ["loop.batch_size=4", "generator.max_new_tokens=4", "classifier.epochs=1"]
    args = ["--repeats", "1", "--out", str(out), *sizes, "task.demo_products=40"]
    module.main(args)
    report = json.loads(out.read_text())
    for which in ("wall", "cpu"):
        phases = report[f"{which}_seconds"]
        assert {"phase/sample", "phase/reference", "phase/reward", "phase/update"} <= set(phases)
        assert all(math.isfinite(v) and v >= 0 for v in report[f"{which}_ratios"].values())
    assert report["batch"]["rows"] == 4
    assert report["ppo"]["forward_backward_passes"] == report["ppo"]["epochs"]
