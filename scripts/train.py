r"""Config-driven training for every method.

    python scripts/train.py --config=configs/<method>/<exp>.py[:arg] --workdir=DIR \
        [--config.optim.learning_rate=3e-4 ...]

The config is locked: an override of a key that does not exist, or of the wrong type, stops with
a message naming the key and the fix. The resolved config is saved to ``DIR/config.json`` (and
``config.py.txt``) before training; rerunning with the same ``--workdir`` resumes, and a resume
whose config differs from the saved one stops with the key (only the budget, the log and
checkpoint intervals, the progress bar and ``debug.*`` may change:
``config_checks.RESUMABLE_KEYS``).

Multi-host: start the same command on every host, with ``--coordinator_address``,
``--num_processes`` and ``--process_id`` (or the ``JAX_*`` environment variables, or
``--distributed_auto`` on TPU pods / SLURM); see the README, "At scale".
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from common import config_checks
from common import distributed
from common import methods
from common import run_services

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file: configs/<method>/<exp>.py[:arg].", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
_COORD = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-host).")
_NPROC = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-host).")
_PID = flags.DEFINE_integer("process_id", None, "This process's index (multi-host).")
_AUTO = flags.DEFINE_bool("distributed_auto", False,
                          "Let jax.distributed.initialize() detect the cluster (TPU pods, SLURM).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not any(a.startswith(("--verbosity", "-v")) for a in sys.argv):
    # Orbax and JAX log every save at INFO; show warnings unless --verbosity asks for more.
    logging.set_verbosity(logging.WARNING)
  distributed.initialize(_COORD.value, _NPROC.value, _PID.value, auto=_AUTO.value)
  config = _CONFIG.value
  workdir = _WORKDIR.value
  try:
    run_services.prepare_workdir(workdir)
    trainer = methods.get_trainer(config.method)
    config_checks.save_run_config(config, workdir, write=distributed.is_main_process())
    trainer(config, workdir)
  except (config_checks.ConfigError, run_services.WorkdirError,
          run_services.WorkdirInUseError) as e:
    sys.stderr.write(f"Error: {e}\n")
    sys.exit(2)


if __name__ == "__main__":
  app.run(main, flags_parser=config_checks.parse_flags)
