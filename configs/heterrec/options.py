"""Comma-separated config arguments shared by configs/heterrec/*.py: model, ablations, sizes.

- a model name: ``heterrec``, ``sasrec``, ``fusion_sasrec``, ``bert4rec`` (the cloze objective);
- ablations: ``causal`` (token mask), ``meanpool`` (item pooling), ``k2``..``k5`` (LMP steps),
  ``noid`` (HeterRec without the id token), ``concatfusion`` (fusion SASRec by concat), ``postln``
  (post-LN blocks with an embedding layer norm, RecBole's SASRec block; default pre-LN),
  ``pervalue`` (HeterRec: a multi-valued field such as an item's attributes as one token per
  value, not one pooled token; ``model.multi_tokens``). The mask ablation only changes anything
  with mean pooling or two or more token layers: with one token layer and ``last`` pooling, the
  last slot of an item sees the same tokens under either mask (measured identical), so compare
  ``meanpool`` with ``causal,meanpool`` (with run_suite.py, whose ``--models`` list splits on
  commas, put one of them in the config argument: ``--config=...:heterrec,causal --models=meanpool``);
- ``regularized`` (HeterRec): mean pooling, candidates scored by the sum of the field tokens
  (``model.candidate_fusion = "sum"``, the candidate embedding fusion SASRec ties to its input)
  and the baselines' dropout 0.5 at both HCT levels instead of 0.2. Measured on Amazon Toys
  (docs/heterrec_results.md, 2026-12-03): HeterRec at 0.2 overfits there (lowest training loss,
  validation stalls from step 2,000); these three together lift its seed-0 test NDCG@10 from
  0.0440 to 0.0634. Not yet measured on ML-100K, whose configs keep the 0.2 recipe;
- a model size from the ladder: ``xs``, ``s``, ``m``, ``l`` (width and depth; see ``SIZES``), to
  measure how quality grows with size;
- ``mask``: evaluate with history masking;
- ``runlocal``: a seconds-long smoke run of a file-based config (short history, 20 steps, one
  evaluation batch); the synthetic config has its own, on its tiny data set.
"""

import ml_collections

MODELS = ("heterrec", "sasrec", "fusion_sasrec", "bert4rec")
# d_model, heads, token layers, item layers.
SIZES = {"xs": (32, 2, 1, 1), "s": (64, 2, 1, 2), "m": (128, 4, 2, 2), "l": (256, 4, 2, 4)}
KNOWN = set(MODELS) | set(SIZES) | {"causal", "meanpool", "noid", "concatfusion", "postln",
                                    "pervalue", "mask", "k2", "k3", "k4", "k5", "runlocal",
                                    "regularized"}


def parse(arg: str) -> list[str]:
  return [a for a in (arg or "").split(",") if a]


def apply(c: ml_collections.ConfigDict, opts: list[str], extra: set[str] = frozenset()) -> None:
  """Applies the options above to a HeterRec trainer config; unknown options are an error."""
  unknown = [o for o in opts if o not in KNOWN and o not in extra]
  if unknown:
    raise ValueError(f"Unknown config argument(s) {unknown}; known: {sorted(KNOWN | set(extra))}.")
  for name in MODELS:
    if name in opts:
      c.model.name = name
  if c.model.name == "bert4rec":
    c.loss.objective = "cloze"
  for size, (d, heads, token_layers, item_layers) in SIZES.items():
    if size in opts:
      c.model.d_model, c.model.heads = d, heads
      c.model.token_layers, c.model.item_layers = token_layers, item_layers
  if "causal" in opts:
    c.model.mask = "causal"
  if "meanpool" in opts:
    c.model.pooling = "mean"
  if "noid" in opts:
    c.model.use_id = False
  if "concatfusion" in opts:
    c.model.fusion = "concat"
  if "postln" in opts:
    c.model.norm = "post"
  if "pervalue" in opts:
    c.model.multi_tokens = "per_value"
  if "mask" in opts:
    c.eval.mask_history = True
  if "regularized" in opts:
    c.model.pooling = "mean"
    c.model.candidate_fusion = "sum"
    c.model.dropout = c.model.attention_dropout = 0.5
  for k in (2, 3, 4, 5):
    if f"k{k}" in opts:
      c.loss.k = k
  if "runlocal" in opts and "runlocal" not in extra:
    c.model.max_len = 20
    c.input.stride = min(c.input.stride, c.model.max_len)
    c.train.num_steps = 20
    c.train.eval_every = 10
    c.train.batch_size = 64
    c.eval.max_batches = 1
