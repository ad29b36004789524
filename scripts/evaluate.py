r"""Tests the best checkpoint of a run, finished or stopped, and writes its ``results.json``.

    python scripts/evaluate.py --workdir=DIR

A run stopped by SIGTERM (preemption), ``timeout`` or a kill saves checkpoints but never reaches
its final evaluation. This reads the run's own ``DIR/config.json``, restores ``DIR/best`` (the
best validation state so far; else the newest checkpoint), evaluates it on the validation and test
splits exactly as the end of a run would, and writes ``DIR/results.json`` marked with the step the
run had reached, the reason it ended and the step of the evaluated state. It holds the workdir's
lock meanwhile, so it refuses to run beside a live training run of the same workdir.
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
import ml_collections

from common import config_checks
from common import methods
from common import run_services

_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory (holds config.json).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  workdir = _WORKDIR.value
  path = os.path.join(workdir, "config.json")
  try:
    if not os.path.isfile(path):
      raise config_checks.ConfigError(
          "--workdir", f"{path} does not exist: {workdir} is not a run's workdir",
          "pass the --workdir a run of scripts/train.py wrote to")
    with open(path) as f:
      config = ml_collections.ConfigDict(json.load(f))
    results = methods.get_evaluator(config.method)(config, workdir)
  except (config_checks.ConfigError, FileNotFoundError, run_services.WorkdirInUseError) as e:
    sys.stderr.write(f"Error: {e}\n")
    sys.exit(2)
  print(f"Wrote {os.path.join(workdir, 'results.json')}: state of step "
        f"{results['evaluated_step']}; the run reached step {results['step']} "
        f"({results['stop_reason']}).")


if __name__ == "__main__":
  app.run(main)
