"""Two real processes joined by jax.distributed on CPU train data-parallel and agree.

Nothing is mocked: each process runs ``common.distributed.initialize`` (gloo collectives), loads
only its half of every global batch, and the step's gradients are averaged across all 4 devices
of the 2 processes. The result must equal a single process with 4 devices on the same data.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.common import helpers

DRIVER = textwrap.dedent("""
    import sys
    import numpy as np
    from common import distributed
    distributed.initialize(sys.argv[1] or None, int(sys.argv[2]), int(sys.argv[3]))
    import jax
    from common import example_task
    from tests.common import helpers
    config = helpers.tiny_config(num_steps=6, checkpoint_every=3)
    config.parallel.mode = sys.argv[5]
    out = example_task.train_and_evaluate(config, sys.argv[4])
    flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(out["state"].params)])
    np.save(sys.argv[6], flat)
    print("process", jax.process_index(), "of", jax.process_count(), "devices",
          jax.device_count(), "local batch", distributed.local_batch_size(32, 4))
""")


def _launch(tmp_path, mode, nproc, devices_each, workdir):
  script = tmp_path / "driver.py"
  script.write_text(DRIVER)
  addr = f"127.0.0.1:{helpers.free_port()}" if nproc > 1 else ""
  procs = []
  for pid in range(nproc):
    out = tmp_path / f"params_{mode}_{nproc}_{pid}.npy"
    cmd = [sys.executable, str(script), addr, str(nproc), str(pid), str(workdir), mode, str(out)]
    procs.append((subprocess.Popen(cmd, env=helpers.env(devices_each), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, cwd=helpers.REPO_ROOT), out))
  results = []
  for p, out in procs:
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, f"process failed:\n{stderr[-3000:]}"
    results.append((stdout, np.load(out)))
  return results


@pytest.mark.parametrize("mode", ["mesh", "pmap"])
def test_two_processes_agree_with_each_other_and_with_one_process(tmp_path, mode):
  multi = _launch(tmp_path, mode, nproc=2, devices_each=2, workdir=tmp_path / "multi")
  (out0, p0), (out1, p1) = multi
  assert "process 0 of 2 devices 4 local batch 16" in out0
  assert "process 1 of 2 devices 4 local batch 16" in out1
  np.testing.assert_array_equal(p0, p1)
  (_, single), = _launch(tmp_path, mode, nproc=1, devices_each=4, workdir=tmp_path / "single")
  np.testing.assert_allclose(p0, single, rtol=2e-4, atol=2e-6)
  # The checkpoint written jointly by both processes holds the same parameters.
  step, params, record = helpers.final_params(str(tmp_path / "multi"))
  assert step == 6 and record["data"] == {"index": 6}
  import jax  # pylint: disable=g-import-not-at-top
  flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(params)])
  np.testing.assert_array_equal(flat, p0)
