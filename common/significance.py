"""Significance tests for paired and unpaired comparisons (numpy only, no JAX).

Shared by the recommendation reports (users as the paired unit, resampled tests) and the RL
reports (seeds as the unit, exact tests over every sign pattern / split).
"""

import itertools
import math

import numpy as np


def sign_flip_p(d: np.ndarray) -> float:
  """Exact two-sided p of a paired sign-flip test on the differences ``d``."""
  d = np.asarray(d, np.float64)
  signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
  stats = np.abs(signs @ d)
  return float(np.mean(stats >= abs(d.sum()) - 1e-12))


def permutation_p(a: np.ndarray, b: np.ndarray) -> float:
  """Exact two-sided p of a two-sample permutation test on the difference of means."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  pooled, n = np.concatenate([a, b]), len(a)
  if math.comb(len(pooled), n) > 200_000:
    raise ValueError(f"{len(pooled)} samples: too many splits for the exact test.")
  observed = abs(a.mean() - b.mean())
  total, count = pooled.sum(), 0
  splits = 0
  for idx in itertools.combinations(range(len(pooled)), n):
    sa = pooled[list(idx)].sum()
    diff = abs(sa / n - (total - sa) / (len(pooled) - n))
    count += diff >= observed - 1e-12
    splits += 1
  return count / splits


def paired_stats(a: np.ndarray, b: np.ndarray, resamples: int, seed: int) -> dict:
  """Mean difference a - b over users, its bootstrap 95% interval and sign-flip p-value."""
  d = a - b
  n = len(d)
  rng = np.random.default_rng(seed)
  boot = np.empty(resamples)
  flips = np.empty(resamples)
  for i in range(0, resamples, 1000):  # chunks keep memory at 1000 x n
    m = min(1000, resamples - i)
    boot[i:i + m] = d[rng.integers(0, n, size=(m, n))].mean(axis=1)
    flips[i:i + m] = (d * rng.choice((-1.0, 1.0), size=(m, n))).mean(axis=1)
  observed = d.mean()
  # Add-one estimate: the observed assignment is one of the permutations.
  p = (1 + np.sum(np.abs(flips) >= abs(observed) - 1e-15)) / (resamples + 1)
  lo, hi = np.quantile(boot, (0.025, 0.975))
  return dict(n=int(n), mean_a=float(a.mean()), mean_b=float(b.mean()), diff=float(observed),
              se=float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
              ci95=(float(lo), float(hi)), p_sign_flip=float(p),
              wins=int(np.sum(d > 0)), ties=int(np.sum(d == 0)), losses=int(np.sum(d < 0)))
