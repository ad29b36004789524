"""Test set-up shared by every test: 8 fake CPU devices, no GPU, quiet logs."""

import os

# Must happen before JAX initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# XLA's CPU backend compiles threefry's unrolled hash slowly (dropout masks take seconds); rbg
# keys halve the suite's compile time. The code under test is the same for either kind of key.
os.environ.setdefault("JAX_DEFAULT_PRNG_IMPL", "rbg")


def pytest_xdist_auto_num_workers(config):
  """``-n auto``: one worker per core this process may run on (taskset counts), at most 4.

  Each worker is a separate JAX process with 8 fake devices; more than 4 buys little on a
  suite this size and costs memory.
  """
  del config
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    cores = os.cpu_count() or 1
  return max(1, min(cores, 4))
