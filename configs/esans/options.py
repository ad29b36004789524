"""Comma-separated config arguments shared by configs/esans/*.py: samplers, ablations, sizes.

- a sampler preset (esans_jax/samplers.py): ``uniform``, ``popularity``, ``in_batch``, ``mixed``
  (in-batch + uniform, debiased), ``hard`` (dynamic hard-negative mining), ``msac``,
  ``edis_simple``, ``edis_hard``, ``edis``, ``esans`` (the default: MSAC + both EDIS kinds),
  ``esans_simple``, ``esans_hard``;
- ablations: ``no_edis`` (= msac), ``no_msac`` (= edis), ``simple`` (= esans_simple; ESANS with
  hard interpolation only is the preset ``esans_hard``: ``hard`` is hard-negative mining),
  ``mc<a>_mo<b>`` (e.g. ``mc3_mo6``: MSAC's m_c / m_o), ``k1_<n>`` (primary
  clusters), ``k2_<n>`` (residual codes), ``refresh_<n>`` (re-cluster every n steps; 0 = once),
  ``rep_<multimodal|tower|both>`` (what MSAC clusters), ``nomm`` (the item tower without the
  multimodal vector), ``mean`` (mean-pooling user tower), ``nologq`` (no logQ correction of the
  shared pool);
- ``quick`` / ``runlocal``: the README's main job / a seconds-long smoke run.
"""

import re

import ml_collections

SAMPLERS = ("uniform", "popularity", "in_batch", "mixed", "hard", "msac", "edis_simple",
            "edis_hard", "edis", "esans", "esans_simple", "esans_hard")
# ("hard" is the hard-negative-mining preset; ESANS with hard interpolation only is esans_hard.)
ABLATIONS = {"no_edis": "msac", "no_msac": "edis", "simple": "esans_simple"}
FLAGS = {"nomm", "mean", "nologq", "quick", "runlocal"}
_PATTERNS = (r"mc(\d+)_mo(\d+)", r"k1_(\d+)", r"k2_(\d+)", r"refresh_(\d+)",
             r"rep_(multimodal|tower|both)")


def parse(arg: str) -> list[str]:
  return [a for a in (arg or "").split(",") if a]


def _known(opt: str) -> bool:
  return (opt in SAMPLERS or opt in ABLATIONS or opt in FLAGS
          or any(re.fullmatch(p, opt) for p in _PATTERNS))


def apply(c: ml_collections.ConfigDict, opts: list[str], extra=frozenset()) -> None:
  """Applies the options above to an ESANS config; an unknown option is an error."""
  unknown = [o for o in opts if not _known(o) and o not in extra]
  if unknown:
    raise ValueError(f"Unknown config argument(s) {unknown}; known: samplers {SAMPLERS}, "
                     f"ablations {sorted(ABLATIONS)}, mc<a>_mo<b>, k1_<n>, k2_<n>, refresh_<n>, "
                     f"rep_<multimodal|tower|both>, {sorted(FLAGS | set(extra))}.")
  for o in opts:
    if o in SAMPLERS:
      c.sampler.name = o
    elif o in ABLATIONS:
      c.sampler.name = ABLATIONS[o]
    elif m := re.fullmatch(_PATTERNS[0], o):
      c.sampler.m_c, c.sampler.m_o = int(m.group(1)), int(m.group(2))
    elif m := re.fullmatch(_PATTERNS[1], o):
      c.sampler.k1 = int(m.group(1))
    elif m := re.fullmatch(_PATTERNS[2], o):
      c.sampler.k2 = int(m.group(1))
    elif m := re.fullmatch(_PATTERNS[3], o):
      c.sampler.refresh_every = int(m.group(1))
    elif m := re.fullmatch(_PATTERNS[4], o):
      c.sampler.representation = m.group(1)
    elif o == "nomm":
      c.model.use_mm = False
    elif o == "mean":
      c.model.user_encoder = "mean"
    elif o == "nologq":
      c.sampler.logq = False
