"""Every key the HeterRec trainer reads, with its default: what configs/heterrec/*.py start from.

A plain config module (ml_collections only; importing it loads no JAX and no trainer code). The
trainer checks a config against these keys and turns ``model`` and ``loss`` into the frozen
config objects the models and objectives take (``heterrec_jax/config.py``); the meaning of each
key is in heterrec_jax/README.md.
"""

import ml_collections

from configs import base


def model_config() -> ml_collections.ConfigDict:
  """The ``config.model`` keys."""
  c = ml_collections.ConfigDict()
  c.name = "heterrec"  # heterrec | sasrec | fusion_sasrec | bert4rec
  c.max_len = 50  # L, items per history (the model's position table holds L + 1)
  c.d_model = 64  # item-level width = scoring width
  c.heads = 2
  c.mlp_ratio = 4  # MLP width = mlp_ratio * block width
  c.dropout = 0.2
  c.attention_dropout = 0.2
  c.norm = "pre"  # pre | post: layer-norm placement (post = BERT / RecBole's SASRec)
  c.dtype = "float32"  # compute dtype: float32 | bfloat16 (params stay float32)
  c.fields = ()  # feature fields to use; empty = every usable field of the data set
  # HeterRec.
  c.token_dim = 0  # token-level width; 0 = d_model
  c.token_heads = 0  # 0 = heads
  c.token_layers = 2
  c.item_heads = 0  # 0 = heads
  c.item_layers = 2  # also the depth of the baselines' single transformer
  c.mask = "block_causal"  # block_causal | causal
  c.pooling = "last"  # last | mean
  c.candidate_fusion = "concat"  # concat | sum | id: candidate embedding from the field tokens
  # A multi-valued field (a bag of attributes) in the token sequence: pooled (one token, the
  # masked mean of its values) | per_value (one token per value, padding values masked).
  c.multi_tokens = "pooled"
  c.use_id = True  # the item id is a token
  c.type_embedding = True
  c.slot_embedding = True
  c.position_embedding = True
  # Baselines.
  c.fusion = "sum"  # fusion_sasrec (and bert4rec with fields): sum | concat
  c.bert4rec_use_fields = False  # BERT4Rec is ids-only unless this is set
  return c


def loss_config() -> ml_collections.ConfigDict:
  """The ``config.loss`` keys."""
  c = ml_collections.ConfigDict()
  c.objective = "lmp"  # lmp | cloze (cloze needs the bert4rec model)
  c.k = 1  # LMP steps; 1 = next-item cross-entropy
  c.gamma = 1.0  # LMP step decay, weight gamma**(j-1)
  c.normalize = "weight"  # weight | count (heterrec_jax/objectives.py)
  c.num_negatives = 0  # 0 = full softmax; > 0 = sampled softmax with this many shared negatives
  c.sampler = "uniform"  # uniform | popularity (train-split counts)
  c.logq_correction = True
  c.mask_prob = 0.2  # cloze masking probability
  c.mask_last_prob = 0.0  # cloze: share of rows that mask only their last item (next-item rows)
  # Full softmax: run it only on the window positions with a target, this many rows at a time
  # (common.recsys.losses.needed_full_softmax_nll); 0 = on every position, padding included (the
  # dense path of the results before 2026-12-03, equal up to float rounding).
  c.softmax_chunk = 256
  return c


def get_default_config() -> ml_collections.ConfigDict:
  """The whole HeterRec trainer config: the loop's keys and HeterRec's sections."""
  c = base.base_config()
  c.method = "heterrec"
  c.data = ml_collections.ConfigDict()  # a data config (configs/data/*.py)
  c.data_dir = ""  # if set, prepare the data set once under it and read it back
  c.model = model_config()
  c.loss = loss_config()
  # stride 0: one window per user per epoch (its last, or a random one); stride s > 0: windows
  # every s items, each target counted once per epoch (common.data.StridedWindowBatches).
  # pack: place each batch's windows side by side in as few rows as fit (common/recsys/packing.py;
  # same windows and loss, less padding), the row count a multiple of pack_multiple.
  c.input = ml_collections.ConfigDict(dict(random_window=False, stride=0, pack=True,
                                           pack_multiple=8))
  c.eval = ml_collections.ConfigDict(dict(
      batch_size=256, mask_history=True, max_batches=0, chunk_size=0, popularity_baseline=True,
      # Write <workdir>/ranks_test.npz (and ranks_valid.npz) at the end: each evaluated user's
      # id, held-out item and 0-based rank at the final (best) state, for paired per-user tests
      # (scripts/paired_test.py).
      save_ranks=True,
      # Pack each batch's histories into fewer rows (common/recsys/packing.py; causal models),
      # the row count a multiple of pack_multiple: the same ranks, less padding to encode.
      pack=True, pack_multiple=8))
  c.train.eval_every = 500
  c.train.early_stop_patience = 0
  return c
