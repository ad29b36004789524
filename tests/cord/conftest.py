"""CORD environment tests: CPU only, and compiled with XLA's cheap settings.

Compilation dominates these tests' time, and `jax_disable_most_optimizations` cuts it by about
40% on CPU without changing what is computed. The setting is switched on only around each test
module of this folder and restored afterwards, so other packages' tests are unaffected.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

# pylint: disable=wrong-import-position
import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def _fast_compiles():
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", previous)
