"""Cheap layout randomness for environment resets.

Under `vmap`, an auto-resetting env samples a fresh layout at *every* step (both branches of the
reset are computed), so the reset's randomness is on the hot path. JAX's threefry costs one
20-round hash per 64 random bits; drawing the ~20-100 numbers of a layout that way was the
largest single cost of our envs' steps on CPU. Instead we hash the key once (64 bits) and expand
it with a counter-based integer mixer (the MurmurHash3 finaliser, as in SplitMix): a handful of
elementwise uint32 ops per number. The streams are deterministic given the key and of ample
statistical quality for placing agents and items; they are not for cryptography or for the
learner's own sampling, which should keep using `jax.random`.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

_GOLDEN = 0x9E3779B9


def _fmix32(x: chex.Array) -> chex.Array:
  """MurmurHash3's 32-bit finaliser: a bijection on uint32 with full avalanche."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x85EBCA6B)
  x = x ^ (x >> 13)
  x = x * jnp.uint32(0xC2B2AE35)
  return x ^ (x >> 16)


def uniform_bits(key: chex.PRNGKey, n: int) -> chex.Array:
  """n pseudo-random uint32 words from one threefry call on `key`."""
  seed = jax.random.bits(key, (2,), jnp.uint32)
  counter = jnp.arange(n, dtype=jnp.uint32) * jnp.uint32(_GOLDEN) + seed[0]
  return _fmix32(_fmix32(counter) ^ seed[1])


def uniform(key: chex.PRNGKey, n: int) -> chex.Array:
  """n float32 numbers in [0, 1) (24-bit resolution) from one threefry call on `key`."""
  return (uniform_bits(key, n) >> 8).astype(jnp.float32) * jnp.float32(2.0 ** -24)


def distinct_cells(u: chex.Array, occupied: chex.Array) -> chex.Array:
  """Picks len(u) distinct free cells, one per uniform number in `u`.

  Pick i starts at cell floor(u[i] * C) and takes the first free cell at or after it, wrapping
  around; picked cells become occupied. This is uniform when nothing is occupied and close to
  uniform otherwise (a cell just after an occupied run is a little likelier), and, unlike
  `top_k`/`sort`-based sampling without replacement, it is a few elementwise ops per pick, which
  is what keeps batched resets cheap on CPU. The caller guarantees enough free cells.

  Args:
    u: float32 (k,) uniform numbers in [0, 1).
    occupied: bool (C,) cells that may not be picked.

  Returns:
    int32 (k,) distinct cell indices.
  """
  num_cells = occupied.shape[0]
  idx = jnp.arange(num_cells, dtype=jnp.int32)
  picks = []
  for i in range(u.shape[0]):
    start = jnp.floor(u[i] * num_cells).astype(jnp.int32)
    # Cyclic distance from the start; the nearest free cell wins. A min-reduction, because
    # argmax/argmin lower to variadic reductions that are several times slower on CPU.
    gap = idx - start
    gap = jnp.min(jnp.where(occupied, 2 * num_cells, jnp.where(gap < 0, gap + num_cells, gap)))
    cell = start + gap
    cell = jnp.where(cell >= num_cells, cell - num_cells, cell)
    occupied = occupied | (idx == cell)
    picks.append(cell)
  return jnp.stack(picks)


def top_sum(values: chex.Array, k: int) -> chex.Array:
  """Sum of the k largest entries of a small 1-D array, without a (slow, batched) sort."""
  n = values.shape[0]
  i = jnp.arange(n)
  # rank_i = how many entries beat entry i (ties broken by index), so exactly k have rank < k.
  beats = (values[None, :] > values[:, None]) | ((values[None, :] == values[:, None])
                                                & (i[None, :] < i[:, None]))
  rank = jnp.sum(beats, axis=1)
  return jnp.sum(jnp.where(rank < k, values, 0))


def first_min_index(values: chex.Array, axis: int = -1) -> chex.Array:
  """`jnp.argmin` as two plain min-reductions (argmin's variadic reduction is slow on CPU).

  Returns the smallest index attaining the minimum, like `argmin`; an all-inf row gives 0.
  """
  size = values.shape[axis]
  best = jnp.min(values, axis=axis, keepdims=True)
  idx = jax.lax.broadcasted_iota(jnp.int32, values.shape, axis % values.ndim)
  first = jnp.min(jnp.where(values == best, idx, size), axis=axis)
  return jnp.where(first == size, 0, first)
