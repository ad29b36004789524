"""scripts/device_report.py on a fabricated device-check folder; scripts/device_probe.py's probe.

The shell script itself (scripts/device_check.sh) runs real training and benchmarks, minutes
even on CPU, so it is not run here: these tests pin what it relies on.
"""

import importlib.util
import json
import math
import os
import time

import jax.numpy as jnp
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _module(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "scripts", name + ".py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


report_lib = _module("device_report")
probe_lib = _module("device_probe")


def _write(path, obj):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(obj if isinstance(obj, str) else json.dumps(obj))


def _stage(name, kind, status, rc, start, end, limit, artifact="", config="", command="cmd"):
  return "\t".join(map(str, (name, kind, status, rc, start, end, limit, artifact, config,
                             command))) + "\n"


@pytest.fixture
def check_dir(tmp_path):
  """What device_check.sh leaves after a run on an H200 with one failed and one skipped stage."""
  out = str(tmp_path)
  t = 1_700_000_000.0
  stages = [
      _stage("probe", "probe", "ok", 0, t, t + 20.5, 150, "probe.json"),
      _stage("example/pmap", "train", "ok", 0, t + 21, t + 51.25, 180, "runs/example_pmap",
             "configs/example/mlp.py", "python scripts/train.py --config=configs/example/mlp.py"),
      _stage("heterrec/mesh", "train", "failed", 1, t + 52, t + 60, 180, "runs/heterrec_mesh",
             "configs/heterrec/synthetic.py:quick"),
      _stage("esans/pmap", "train", "skipped", "", "", "", "", "",
             "configs/esans/synthetic.py:quick",
             "skipped: config file configs/esans/synthetic.py does not exist (not built yet)"),
      _stage("bench_heterrec", "bench_heterrec", "ok", 0, t + 61, t + 150, 240,
             "bench_heterrec/bench.json"),
      _stage("bench_envs", "bench_envs", "budget", "", "", "", 180, "bench_envs.json", "",
             "not run: the overall budget of 450s (DEVICE_CHECK_BUDGET_S) was spent"),
  ]
  _write(os.path.join(out, "stages.tsv"), "".join(stages))
  _write(os.path.join(out, "probe.json"), {
      "host": "gpu-host-7", "backend": "gpu", "platform": "gpu", "device_kind": "NVIDIA H200",
      "device_count": 1, "process_count": 1, "jax": "0.10.2", "jaxlib": "0.10.2",
      "python": "3.11.7", "memory_gib": 105.5, "peak": probe_lib.known_peak("NVIDIA H200"),
      "matmul": [
          {"dtype": "float32", "n": 8192, "reps": 10, "tflops": 401.2, "peak_tflops": 494.0,
           "peak_kind": "tf32", "fraction_of_peak": 401.2 / 494.0},
          {"dtype": "bfloat16", "n": 8192, "reps": 10, "tflops": 790.0, "peak_tflops": 989.0,
           "peak_kind": "bfloat16", "fraction_of_peak": 790.0 / 989.0}]})
  run = os.path.join(out, "runs", "example_pmap")
  _write(os.path.join(run, "results.json"),
         {"step": 600, "stop_reason": "num_steps", "test": {"accuracy": 0.9229, "loss": 0.3959}})
  _write(os.path.join(run, "metrics.jsonl"), "".join(json.dumps(r) + "\n" for r in [
      {"step": 550, "split": "train", "loss": 0.41, "steps_per_sec": 111.0},
      {"step": 600, "split": "train", "loss": 0.40, "steps_per_sec": 1234.5},
      {"step": 600, "split": "valid", "accuracy": 0.941},
      {"step": 600, "split": "test", "accuracy": 0.9229}]))
  _write(os.path.join(out, "logs", "heterrec_mesh.log"),
         "".join(f"line {i}\n" for i in range(100)) + "ValueError: planted failure 42\n")
  _write(os.path.join(out, "bench_heterrec", "bench.json"), {
      "matmul_peak_flops_per_second": 400e12,
      "rows": [{"model": "heterrec (l)", "parameters": 2_345_678, "batch_size": 128,
                "steps_per_second": 87.25, "targets_per_second": 5.5e5,
                "eval_users_per_second": 3.1e4, "flops_per_step": 3.54e11,
                "achieved_flops_per_second": 3.09e13, "fraction_of_matmul_peak": 0.0772}]})
  return out


def test_report_holds_every_figure(check_dir):
  started = time.time() - 151.0
  assert report_lib.main(["collect", check_dir, "--started", str(started), "--command",
                          "bash scripts/device_check.sh out", "--budget_s", "450"]) == 0
  with open(os.path.join(check_dir, "device_check.json")) as f:
    report = json.load(f)
  with open(os.path.join(check_dir, "device_check.md")) as f:
    md = f.read()

  assert report["host"] == "gpu-host-7" and report["probe"]["device_kind"] == "NVIDIA H200"
  assert 150.0 <= report["total_seconds"] < 200.0
  assert report["failed"] == ["heterrec/mesh", "bench_envs"]
  assert report["skipped"] == ["esans/pmap"]
  example = report["train"][0]
  assert (example["method"], example["mode"]) == ("example", "pmap")
  assert example["wall_s"] == pytest.approx(30.25)
  assert example["steps_per_sec"] == 1234.5  # the last train row, not the first
  assert example["test"] == {"accuracy": 0.9229, "loss": 0.3959}
  bench_row = report["bench_heterrec"]["rows"][0]
  assert bench_row["fraction_of_spec_peak"] == pytest.approx(3.09e13 / 494e12)
  assert "planted failure 42" in report["log_tails"]["heterrec/mesh"]
  assert "bench_envs" not in report["log_tails"]  # never ran: no log to show

  for figure in ("gpu-host-7", "NVIDIA H200", "0.10.2", "790", "79.9%", "81.2%",
                 "NVIDIA H200 Tensor Core GPU datasheet", "accuracy 0.9229", "1234",
                 "30.25", "heterrec (l)", "87.25", "550k", "31k", "354", "30.9", "7.7%", "6.3%",
                 "FAILED: heterrec/mesh, bench_envs", "planted failure 42",
                 "configs/esans/synthetic.py does not exist", "overall budget of 450s",
                 "budget 450 s"):
    assert figure in md, figure
  assert "line 50\n" not in md  # only the log's tail


def test_backend_and_an_empty_folder(tmp_path, capsys, check_dir):
  assert report_lib.main(["backend", check_dir]) == 0
  assert capsys.readouterr().out.strip() == "gpu"
  # Nothing ran at all: the report still comes out, saying so.
  empty = str(tmp_path / "empty")
  os.makedirs(empty)
  assert report_lib.main(["collect", empty]) == 0
  with open(os.path.join(empty, "device_check.md")) as f:
    md = f.read()
  assert "The probe did not run" in md and "No results" in md


def test_matmul_flops_is_positive_and_finite():
  for dtype in (jnp.float32, jnp.bfloat16):
    flops = probe_lib.matmul_flops(64, dtype, reps=2)
    assert math.isfinite(flops) and flops > 0


def test_known_peaks():
  assert probe_lib.known_peak("NVIDIA H200")["bfloat16"] == 989.0
  assert probe_lib.known_peak("NVIDIA H100 80GB HBM3")["float32"] == 67.0
  assert probe_lib.known_peak("NVIDIA A100-SXM4-80GB")["tf32"] == 156.0
  assert probe_lib.known_peak("TPU v5 lite")["bfloat16"] == 197.0
  assert probe_lib.known_peak("TPU v5p")["bfloat16"] == 459.0
  for unknown in ("cpu", "NVIDIA H100 PCIe", "NVIDIA H200 NVL", "TPU v4 lite"):
    assert probe_lib.known_peak(unknown) is None
