"""Data parallelism: per-device code run with ``jax.pmap`` or with jit over a ``Mesh``.

A method writes its step once, for one device's shard of the batch::

    def train_step(state, batch, rng):  # -> (state, metrics)
      grads = parallel.pmean(grads)      # average over the data axis
      ...

``DataParallel(mode)`` runs it either way:

- ``"pmap"``: ``jax.pmap`` over this process's devices, named axis ``data``; every array carries a
  leading axis over the local devices (a replicated value is copied along it).
- ``"mesh"``: ``jax.jit`` of ``jax.shard_map`` over a 1-D ``Mesh`` of all devices; arrays are
  global ``jax.Array``s whose ``NamedSharding`` says how they are split.

One generic wrapper, ``wrap(fn, in_specs, out_specs)``, serves every per-device function (train
steps, evaluation, a ``lax.scan`` chunk of an RL trainer); ``put`` and ``to_host`` are the only ways
in and out. A spec is a ``PartitionSpec`` (or a pytree prefix of them, as for ``shard_map``):
``REPLICATED = P()``, the same value on every device; ``SHARDED = P('data')``, split along axis 0
(a batch); ``P(None, 'data')``, split along axis 1 (e.g. env states under a leading seed axis).
Under pmap a split axis is moved to the front, so the per-device function sees the same shapes in
both modes.

Because both modes run the same per-device function with the same collectives over the same axis
name, they agree (``tests/common/test_parallel.py``). Per-step randomness is derived inside the
step from the state: ``fold_in(fold_in(state.rng, state.step), device_index)``, so a resumed run
draws the same numbers, and devices draw different ones.
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
REPLICATED = P()
SHARDED = P(DATA_AXIS)

PyTree = Any
StepFn = Callable[..., tuple[PyTree, dict]]


def pmean(tree: PyTree) -> PyTree:
  """Mean over the data-parallel axis; call it on gradients inside a per-device step."""
  return lax.pmean(tree, DATA_AXIS)


def psum(tree: PyTree) -> PyTree:
  return lax.psum(tree, DATA_AXIS)


def _split_axis(spec: P) -> Optional[int]:
  """The axis ``spec`` splits over the data axis, or None for a replicated spec."""
  axes = [i for i, name in enumerate(spec) if name == DATA_AXIS]
  if len(axes) > 1 or any(name not in (None, DATA_AXIS) for name in spec):
    raise ValueError(f"Unsupported PartitionSpec {spec}: only P() or one {DATA_AXIS!r} entry.")
  return axes[0] if axes else None


def _map_with_specs(fn: Callable[[Any, P], Any], tree: PyTree, specs: Any) -> PyTree:
  """``fn(leaf, spec)`` over ``tree``, with ``specs`` a PartitionSpec or a pytree prefix of them."""
  if isinstance(specs, P):
    return jax.tree.map(lambda x: fn(x, specs), tree)
  return jax.tree.map(lambda spec, sub: jax.tree.map(lambda x: fn(x, spec), sub), specs, tree,
                      is_leaf=lambda s: isinstance(s, P))


class DataParallel:
  """Places pytrees on devices, runs per-device functions data-parallel, brings results back.

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
    # pmap takes arrays with a leading axis over this process's devices.
    self._local_mesh = Mesh(np.asarray(self.local_devices), ("local",))
    # Multi-process pmap spans every device (each process feeds its own); pass none explicitly.
    self._pmap_devices = None if jax.process_count() > 1 else self.local_devices

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  @property
  def num_local_devices(self) -> int:
    return len(self.local_devices)

  # -- in and out ----------------------------------------------------------------------------------

  def put(self, tree: PyTree, specs: Any = REPLICATED, key: str = "train.batch_size") -> PyTree:
    """Host arrays -> the layout ``wrap``ped functions take.

    Args:
      tree: a pytree of host (or single-device) arrays. A replicated leaf is the same value on
        every process; a split leaf holds this process's rows of the split axis.
      specs: a PartitionSpec or a pytree prefix of them (``REPLICATED``, ``SHARDED``, ...).
      key: the config key named when a split axis does not divide over the local devices.
    """
    n = self.num_local_devices

    def place(x, spec):
      x = np.asarray(x)
      axis = _split_axis(spec)
      if axis is not None and x.shape[axis] % n:
        raise config_checks.ConfigError(
            key, f"a process-local size of {x.shape[axis]} (axis {axis}) does not split over {n} "
            f"local devices", f"use a global size that is a multiple of {self.num_devices}")
      if self.mode == "mesh":
        return jax.make_array_from_process_local_data(NamedSharding(self.mesh, spec), x)
      if axis is None:
        x = np.broadcast_to(x, (n,) + x.shape)
      else:  # [..., n * m, ...] -> [n, ..., m, ...]
        shape = x.shape[:axis] + (n, x.shape[axis] // n) + x.shape[axis + 1:]
        x = np.moveaxis(x.reshape(shape), axis, 0)
      return jax.device_put(x, NamedSharding(self._local_mesh, P("local")))

    return _map_with_specs(place, tree, specs)

  def replicate(self, tree: PyTree) -> PyTree:
    """Host pytree -> identical on every device."""
    return self.put(tree, REPLICATED)

  def shard_batch(self, local_batch: PyTree, key: str = "train.batch_size") -> PyTree:
    """This process's slice of the global batch -> device arrays split along the data axis."""
    return self.put(local_batch, SHARDED, key)

  def to_host(self, tree: PyTree, specs: Any = REPLICATED) -> PyTree:
    """The one device -> host conversion: numpy arrays in the layout ``put`` was given.

    A replicated leaf comes back as one copy; a split leaf as the whole global array (gathered
    from every process in a multi-process run).
    """
    def fetch(x, spec):
      axis = _split_axis(spec)
      if axis is None:
        shard = x.addressable_data(0)
        return np.asarray(shard[0] if self.mode == "pmap" else shard)
      if self.mode == "mesh":
        if jax.process_count() == 1:
          return np.asarray(x)
        from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
      local = np.asarray(x)  # [n_local, ..., m, ...]
      local = np.moveaxis(local, 0, axis)
      local = local.reshape(local.shape[:axis] + (-1,) + local.shape[axis + 2:])
      if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
        moved = np.moveaxis(local, axis, 0)
        local = np.moveaxis(np.asarray(multihost_utils.process_allgather(moved, tiled=True)),
                            0, axis)
      return local

    return _map_with_specs(fetch, tree, specs)

  # -- running per-device code ---------------------------------------------------------------------

  def wrap(self, fn: Callable[..., Any], in_specs: tuple, out_specs: Any,
           donate_argnums: tuple[int, ...] = (), check_vma: bool = False) -> Callable[..., Any]:
    """Runs the per-device ``fn`` data-parallel over this layout's devices.

    Args:
      fn: written for one device: it sees each argument's per-device part (a split axis holds this
        device's slice) and may use collectives over ``DATA_AXIS``.
      in_specs: one spec (pytree prefix) per positional argument, as for ``shard_map``.
      out_specs: the specs of the outputs. A replicated output must really be the same on every
        device (e.g. the result of ``pmean``/``psum``).
      donate_argnums: arguments whose buffers may be reused for the outputs.
      check_vma: mesh mode: turn on ``shard_map``'s varying-manual-axes typing, which checks that
        replicated outputs are replicated. Off by default, so that ``fn`` means the same in both
        modes: with it on, ``jax.grad`` of a loss with respect to a replicated input (the params)
        already returns the *sum* of the per-device gradients (the transpose of the implicit
        ``pvary``), and the ``pmean`` a step applies would leave that sum D times too large
        (``tests/common/test_parallel.py`` checks the gradients against pmap and one device).

    Returns:
      A function taking and returning arrays in this layout (``put`` / ``to_host``).
    """
    if self.mode == "pmap":
      return jax.pmap(fn, axis_name=DATA_AXIS, devices=self._pmap_devices,
                      donate_argnums=donate_argnums)
    sharded = jax.shard_map(fn, mesh=self.mesh, in_specs=tuple(in_specs), out_specs=out_specs,
                            check_vma=check_vma)
    return jax.jit(sharded, donate_argnums=donate_argnums)

  def wrap_step(self, step_fn: StepFn, donate: bool = True, with_consts: bool = False,
                state_specs: Any = REPLICATED) -> Callable[..., tuple[PyTree, dict]]:
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

    in_specs = (state_specs, SHARDED) + ((REPLICATED,) if with_consts else ())
    return self.wrap(per_device, in_specs, (state_specs, REPLICATED),
                     donate_argnums=(0,) if donate else ())

  def wrap_eval(self, eval_fn: Callable[[PyTree, PyTree], dict]) -> Callable[[PyTree, PyTree],
                                                                             dict]:
    """Per-device ``eval_fn(state, batch) -> sums`` -> data-parallel, summed over devices."""
    return self.wrap(lambda state, batch: psum(eval_fn(state, batch)), (REPLICATED, SHARDED),
                     REPLICATED)

