"""Multi-host set-up and the split of the global batch across processes.

Every process of a multi-host run executes the same program. ``initialize`` joins them through
``jax.distributed`` (JAX's own coordination service; nothing home-made), each process then loads
only ``global_batch // process_count`` examples, and the global arrays that the jitted step sees
are assembled from those process-local pieces with ``jax.make_array_from_process_local_data``.
"""

from __future__ import annotations

import os
from typing import Optional

from absl import logging
import jax
import numpy as np

from common import config_checks

# The variables a launcher sets on each host when it does not use flags (see README, "At scale").
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"

_initialized = False


def initialize(coordinator_address: Optional[str] = None,
               num_processes: Optional[int] = None,
               process_id: Optional[int] = None,
               auto: bool = False) -> None:
  """Joins this process to a multi-process JAX run; a no-op for a single process.

  Arguments not given are read from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
  ``JAX_PROCESS_ID``. With ``auto=True`` (TPU pods, SLURM, Open MPI), JAX finds them itself.
  Must run before anything touches a JAX device.

  Args:
    coordinator_address: ``host:port`` of process 0's coordination service.
    num_processes: how many processes take part.
    process_id: this process's index in ``[0, num_processes)``.
    auto: let ``jax.distributed.initialize()`` detect the cluster.
  """
  global _initialized
  if _initialized:
    return
  coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR) or None
  if num_processes is None and os.environ.get(ENV_NUM_PROCESSES):
    num_processes = int(os.environ[ENV_NUM_PROCESSES])
  if process_id is None and os.environ.get(ENV_PROCESS_ID):
    process_id = int(os.environ[ENV_PROCESS_ID])

  if auto:
    jax.distributed.initialize()
  elif coordinator_address and (num_processes or 1) > 1:
    if process_id is None:
      raise ValueError(
          f"A multi-process run needs this process's id: pass --process_id or set {ENV_PROCESS_ID}.")
    # CPU devices only talk across processes through gloo; GPUs and TPUs ignore this setting.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  else:
    return
  _initialized = True
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices.",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())


def local_batch_size(global_batch_size: int, num_devices: Optional[int] = None,
                     key: str = "train.batch_size", process_count: Optional[int] = None) -> int:
  """The number of examples this process loads per step (the project's one such function).

  Args:
    global_batch_size: the batch summed over all processes and devices.
    num_devices: the devices the step runs on (default: all devices of the run; 1 for a batch
      that is only split between processes, e.g. a host-side evaluation).
    key: the config key named in the error message.
    process_count: the number of processes (default ``jax.process_count()``).

  Returns:
    ``global_batch_size // process_count``.

  Raises:
    config_checks.ConfigError: when the batch does not divide by devices or processes.
  """
  num_devices = num_devices or jax.device_count()
  processes = jax.process_count() if process_count is None else process_count
  if global_batch_size <= 0:
    raise config_checks.ConfigError(key, f"must be positive, got {global_batch_size}",
                                    f"set --config.{key} to a positive multiple of {num_devices}")
  multiple = int(np.lcm(num_devices, processes))
  if global_batch_size % multiple:
    near = sorted({max(1, global_batch_size // multiple) * multiple,
                   (global_batch_size // multiple + 1) * multiple})
    raise config_checks.ConfigError(
        key, f"{key}={global_batch_size} is the global batch and does not divide by the "
        f"{num_devices} devices ({processes} process(es)) it is split over",
        f"set --config.{key}={near[-1]} (a multiple of {multiple}, e.g. "
        f"{' or '.join(map(str, near))})")
  return global_batch_size // processes


def host_slice(global_batch_size: int) -> slice:
  """The rows of a global batch that belong to this process (contiguous, disjoint, in order)."""
  n = global_batch_size // jax.process_count()
  start = jax.process_index() * n
  return slice(start, start + n)


def is_main_process() -> bool:
  return jax.process_index() == 0


def assert_same_across_processes(tree, name: str = "value") -> None:
  """Raises if ``tree`` differs between processes (cheap sanity check on run start)."""
  if jax.process_count() == 1:
    return
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  multihost_utils.assert_equal(jax.tree.map(np.asarray, tree), name)
