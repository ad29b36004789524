"""Helpers for the training-core tests: tiny configs and subprocess runs of the scripts."""

import os
import socket
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(REPO_ROOT, "scripts", "train.py")


def tiny_config(**train):
  from common import example_task  # pylint: disable=g-import-not-at-top
  c = example_task.get_default_config()
  c.model.hidden = (16,)
  c.data.eval_examples = 64
  c.train.update(dict(num_steps=12, batch_size=32, log_every=4, eval_every=0,
                      checkpoint_every=4, progress_bar=False))
  c.train.update(train)
  c.optim.learning_rate = 1e-2
  return c


def env(devices: int = 8) -> dict:
  e = dict(os.environ)
  e["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  e["JAX_PLATFORMS"] = "cpu"
  e["PYTHONPATH"] = REPO_ROOT + os.pathsep + e.get("PYTHONPATH", "")
  return e


def run_train(workdir, *overrides, devices=8, check=True, timeout=300):
  cmd = [sys.executable, TRAIN, "--config=" + os.path.join(REPO_ROOT, "configs/example/mlp.py"),
         f"--workdir={workdir}", "--config.train.progress_bar=False", *overrides]
  proc = subprocess.run(cmd, env=env(devices), capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
  return proc


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def final_params(workdir):
  """The params of the newest checkpoint in ``workdir``, as host arrays."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from common import checkpoints  # pylint: disable=g-import-not-at-top
  ckpt = checkpoints.Checkpointer(workdir, every=0)
  step = ckpt.latest_step()
  template = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), ckpt.saved_structure(step))
  state, record = ckpt.restore(template)
  ckpt.close()
  return step, state["params"], record
