"""Helpers for tests that compile many tiny programs on CPU."""

import jax


def fast_key(seed):
  """A PRNG key whose random bits compile fast on CPU.

  Threefry (the default) makes every dropout mask a large unrolled hash that XLA's CPU backend
  takes seconds to compile; the code under test draws randomness the same way with either kind.
  """
  return jax.random.key(seed, impl="rbg")


def jit(fun, **kwargs):
  """``jax.jit`` with XLA's backend optimisation off: half the CPU compile time, same numbers.

  These tests compile many tiny programs once each, so compile time is their whole cost.
  """
  return jax.jit(fun, compiler_options={"xla_backend_optimization_level": 0}, **kwargs)
