"""Data parallelism: one pure per-device step, run with ``jax.pmap`` or with jit over a ``Mesh``.

A method writes its step once, for one device's shard of the batch::

    def train_step(state, batch, rng):  # -> (state, metrics)
      grads = parallel.pmean(grads)      # average over the data axis
      ...

``DataParallel(mode)`` runs it either way:

- ``"pmap"``: ``jax.pmap`` over this process's devices, named axis ``data``, state replicated along a
  leading device axis and donated.
- ``"mesh"``: ``jax.jit`` of ``jax.shard_map`` over a 1-D ``Mesh`` of all devices, the batch
  sharded with ``NamedSharding(mesh, P('data'))`` and the state replicated (``P()``) and donated.

Because both run the same per-device function with the same collective over the same axis name,
they agree (tested in ``tests/test_parallel.py``). Per-step randomness is derived inside the step
from the state: ``fold_in(fold_in(state.rng, state.step), device_index)``, so a resumed run draws
the same numbers, and devices draw different ones.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from common import config_checks

DATA_AXIS = "data"
MODES = ("pmap", "mesh")

PyTree = Any
StepFn = Callable[[PyTree, PyTree, jax.Array], tuple[PyTree, dict]]


def pmean(tree: PyTree) -> PyTree:
  """Mean over the data-parallel axis; call it on gradients inside a per-device step."""
  return lax.pmean(tree, DATA_AXIS)


def psum(tree: PyTree) -> PyTree:
  return lax.psum(tree, DATA_AXIS)


class DataParallel:
  """Places state and batches on devices and runs a per-device step data-parallel.

  Args:
    mode: ``"pmap"`` or ``"mesh"``.
    num_devices: use the first ``num_devices`` devices (single-process runs only; ``-1``/``None``:
      all of them). Multi-process runs always use every device.
  """

  def __init__(self, mode: str = "mesh", num_devices: Optional[int] = None):
    if mode not in MODES:
      raise config_checks.ConfigError("parallel.mode", f"{mode!r} is not one of {MODES}",
                                      "set --config.parallel.mode=pmap or =mesh")
    devices = jax.devices()
    if num_devices not in (None, -1, 0):
      if jax.process_count() > 1 and num_devices != len(devices):
        raise config_checks.ConfigError(
            "parallel.num_devices", "a multi-process run uses every device",
            "set --config.parallel.num_devices=-1")
      if num_devices > len(devices):
        raise config_checks.ConfigError(
            "parallel.num_devices", f"{num_devices} devices asked, {len(devices)} present",
            f"set --config.parallel.num_devices to at most {len(devices)} (or -1 for all)")
      devices = devices[:num_devices]
    self.mode = mode
    self.devices = devices
    self.local_devices = [d for d in devices if d.process_index == jax.process_index()]
    self.mesh = Mesh(np.asarray(devices), (DATA_AXIS,))
    self._replicated = NamedSharding(self.mesh, P())
    self._sharded = NamedSharding(self.mesh, P(DATA_AXIS))
    # pmap takes arrays with a leading axis over this process's devices.
    self._pmap_sharding = NamedSharding(Mesh(np.asarray(self.local_devices), ("local",)),
                                        P("local"))

  @property
  def _pmap_devices(self):
    # Multi-process pmap spans every device (each process feeds its own); pass none explicitly.
    return None if jax.process_count() > 1 else self.local_devices

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  @property
  def num_local_devices(self) -> int:
    return len(self.local_devices)

  def local_batch_size(self, global_batch_size: int, key: str = "train.batch_size") -> int:
    """Examples this process loads per step; a ConfigError naming ``key`` if it does not divide."""
    from common import distributed  # pylint: disable=g-import-not-at-top
    return distributed.local_batch_size(global_batch_size, self.num_devices, key)

  # -- placement -----------------------------------------------------------------------------------

  def replicate(self, tree: PyTree) -> PyTree:
    """Host (or single-device) pytree -> the form the step takes, identical on every device."""
    tree = jax.tree.map(np.asarray, tree)
    if self.mode == "pmap":
      n = self.num_local_devices
      return jax.device_put(jax.tree.map(lambda x: np.broadcast_to(x, (n,) + x.shape), tree),
                            self._pmap_sharding)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(self._replicated, x), tree)

  def unreplicate(self, tree: PyTree) -> PyTree:
    """The step's state -> one host copy (numpy), e.g. for checkpoints and evaluation."""
    if self.mode == "pmap":
      return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)[0]), tree)
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)

  def shard_batch(self, local_batch: PyTree) -> PyTree:
    """This process's slice of the global batch -> device arrays split along the data axis."""
    n = self.num_local_devices
    def put(x):
      x = np.asarray(x)
      if x.shape[0] % n:
        raise config_checks.ConfigError(
            "train.batch_size", f"a process-local batch of {x.shape[0]} rows does not split over "
            f"{n} local devices", f"use a global batch that is a multiple of {self.num_devices}")
      if self.mode == "pmap":
        return jax.device_put(x.reshape((n, -1) + x.shape[1:]), self._pmap_sharding)
      return jax.make_array_from_process_local_data(self._sharded, x)
    return jax.tree.map(put, local_batch)

  def metrics_to_host(self, metrics: PyTree) -> dict:
    """Step metrics (already averaged over devices) -> ``{name: float}``."""
    if self.mode == "pmap":
      metrics = jax.tree.map(lambda x: x.addressable_data(0)[0], metrics)
    return {k: float(v) for k, v in jax.device_get(metrics).items()}

  # -- the step ------------------------------------------------------------------------------------

  def wrap_step(self, step_fn: StepFn, donate: bool = True, with_consts: bool = False
                ) -> Callable[..., tuple[PyTree, dict]]:
    """Turns a per-device ``step_fn(state, batch, rng)`` into a data-parallel ``step(state, batch)``.

    ``state`` must have ``.rng`` (a raw PRNG key) and ``.step``. Metrics returned by ``step_fn``
    are averaged over devices here; gradients must be averaged by ``step_fn`` itself (``pmean``).

    With ``with_consts=True`` the step is ``step(state, batch, consts)`` and calls
    ``step_fn(state, batch, rng, consts)``: ``consts`` is a replicated, never donated pytree
    (e.g. a catalogue's item features) placed once with ``replicate`` instead of being baked into
    the compiled program.
    """
    def per_device(state, batch, *consts):
      rng = jax.random.fold_in(jax.random.fold_in(state.rng, state.step),
                               lax.axis_index(DATA_AXIS))
      state, metrics = step_fn(state, batch, rng, *consts)
      return state, pmean(metrics)

    donate_argnums = (0,) if donate else ()
    if self.mode == "pmap":
      return jax.pmap(per_device, axis_name=DATA_AXIS, devices=self._pmap_devices,
                      donate_argnums=donate_argnums)
    in_specs = (P(), P(DATA_AXIS)) + ((P(),) if with_consts else ())
    sharded = jax.shard_map(per_device, mesh=self.mesh, in_specs=in_specs, out_specs=(P(), P()))
    return jax.jit(sharded, donate_argnums=donate_argnums)

  def wrap_eval(self, eval_fn: Callable[[PyTree, PyTree], dict]) -> Callable[[PyTree, PyTree],
                                                                             dict]:
    """Per-device ``eval_fn(state, batch) -> sums`` -> data-parallel, summed over devices."""
    def per_device(state, batch):
      return psum(eval_fn(state, batch))
    if self.mode == "pmap":
      return jax.pmap(per_device, axis_name=DATA_AXIS, devices=self._pmap_devices)
    return jax.jit(jax.shard_map(per_device, mesh=self.mesh, in_specs=(P(), P(DATA_AXIS)),
                                 out_specs=P()))
