"""Shapes, a jitted forward/backward per model, catalogue embeddings, the config objects, errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import config_checks
from common.recsys import embedders
from common.recsys import losses
from heterrec_jax import config as config_lib
from heterrec_jax import hct
from heterrec_jax import models
from heterrec_jax import objectives
from tests.heterrec import heterrec_testlib as lib

N, L, D = lib.NUM_ITEMS, lib.MAX_LEN, 16
IDS = np.array([[0, 0, 3, 7, 7, 1], [5, 2, 9, 12, 4, 8], [6, 11, 0, 10, 3, 0]], np.int32)
COUNTED = np.array([[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 1, 0]], bool)

CASES = {
    "heterrec": (dict(name="heterrec", token_dim=8, pooling="mean"), [dict(k=2, gamma=0.5)]),
    "sasrec": (dict(name="sasrec"), [dict(k=1, num_negatives=5, logq_correction=False)]),
    "fusion_sasrec": (dict(name="fusion_sasrec", fusion="concat"),
                      [dict(k=3, num_negatives=7, sampler="popularity")]),
    "bert4rec": (dict(name="bert4rec", bert4rec_use_fields=True),
                 [dict(objective="cloze", mask_prob=0.5)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_jitted_forward_backward(name):
  model_cfg, loss_cfgs = CASES[name]
  model = models.get_model(lib.model_config(**model_cfg), num_items=N,
                           field_specs=lib.make_specs())
  features = embedders.select_features(model.fields, lib.make_features(), N)
  loss_fns = [objectives.make_loss_fn(model, config_lib.loss_config(c, model=name))
              for c in loss_cfgs]
  log_q = losses.popularity_log_q(np.arange(N + 1))

  # Parameters shaped by init but drawn in numpy: XLA compiles the initialisers slowly on CPU,
  # and test_real_init covers them.
  params = lib.random_params(model, IDS, features, scale=0.1)["params"]

  @lib.jit
  def step(params, rng, batch, features):
    out = {"hidden": model.apply({"params": params}, batch, features),
           "items": models.catalogue_embeddings(model, {"params": params}, features)}
    # Each extra program costs compile time; check each helper on the model it matters for.
    if name == "heterrec":
      out["chunked"] = models.catalogue_embeddings(model, {"params": params}, features,
                                                   chunk_size=7)
    if name == "bert4rec":
      out["users"] = models.user_embeddings(model, {"params": params}, batch, features)
    for i, loss_fn in enumerate(loss_fns):
      (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          params, batch, features, rng, True, log_q)
      out[f"loss{i}"], out[f"aux{i}"], out[f"grads{i}"] = loss, aux, grads
    if name == "heterrec":  # the loss function's full LMP is lmp_loss on the model's outputs
      eval_loss, _ = loss_fns[0](params, batch, features, rng, False)
      out["eval_loss"] = eval_loss
      out["ref_loss"], _ = objectives.lmp_loss(out["hidden"], out["items"], batch["item_ids"],
                                               k=2, gamma=0.5)
      # Strided windows: only the items of target_mask are targets.
      out["counted_loss"], out["counted_aux"] = loss_fns[0](
          params, dict(batch, target_mask=jnp.asarray(COUNTED)), features, rng, False)
    return out

  out = step(params, lib.fast_key(0), {"item_ids": IDS}, features)
  assert out["hidden"].shape == (3, L, D) and out["items"].shape == (N + 1, D)
  if "chunked" in out:
    np.testing.assert_allclose(out["chunked"], out["items"], rtol=1e-6, atol=1e-6)
  if "users" in out:
    assert out["users"].shape == (3, D)
  for i in range(len(loss_fns)):
    assert np.isfinite(float(out[f"loss{i}"])) and float(out[f"loss{i}"]) > 0
    grads = jax.tree.leaves(out[f"grads{i}"])
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert sum(np.abs(np.asarray(g)).sum() > 0 for g in grads) > len(grads) // 2
  if name == "bert4rec":
    assert int(out["aux0"]["num_targets"]) >= 1
  else:
    assert int(out["aux0"]["num_targets"]) == 10  # valid next-item pairs in IDS
  if name != "sasrec":  # features shape the score: their embeddings get gradient
    field_grads = [g for path, g in jax.tree_util.tree_leaves_with_path(out["grads0"])
                   if "field_" in jax.tree_util.keystr(path)]
    assert field_grads and all(np.abs(np.asarray(g)).sum() > 0 for g in field_grads)
  if name == "heterrec":
    np.testing.assert_allclose(float(out["eval_loss"]), float(out["ref_loss"]), rtol=1e-5)
    h, e = np.asarray(out["hidden"], np.float64), np.asarray(out["items"], np.float64)
    total = denom = 0.0
    for b, t, j in np.ndindex(3, L, 2):  # the k = 2, gamma = 0.5 terms, written out
      u = t + j + 1
      if IDS[b, t] and u < L and IDS[b, u] and COUNTED[b, u]:
        logits = h[b, t] @ e[1:].T
        nll = np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[IDS[b, u] - 1]
        total, denom = total + 0.5 ** j * nll, denom + 0.5 ** j
    np.testing.assert_allclose(float(out["counted_loss"]), total / denom, rtol=1e-5)
    # next-item pairs whose target is counted
    assert int(out["counted_aux"]["num_targets"]) == 7


def test_real_init():
  model = models.get_model(lib.model_config(name="bert4rec"), num_items=N)
  variables = lib.jit(model.init)(lib.fast_key(0), {"item_ids": IDS}, {})
  shapes = jax.eval_shape(model.init, lib.fast_key(0), {"item_ids": IDS}, {})
  assert jax.tree.map(lambda v: (v.shape, v.dtype), variables) == jax.tree.map(
      lambda v: (v.shape, v.dtype), shapes)
  assert variables["params"]["embedder"]["id"]["embedding"].shape == (N + 2, D)  # + mask row
  hetero = models.get_model(lib.model_config(name="heterrec", token_dim=8), num_items=N,
                            field_specs=lib.make_specs())
  features = embedders.select_features(hetero.fields, lib.make_features(), N)
  shapes = jax.eval_shape(hetero.init, lib.fast_key(0), {"item_ids": IDS}, features)["params"]
  assert shapes["htfl"]["embedder"]["field_genre"]["embedding"].shape == (7, 8)
  assert shapes["candidate"]["proj"]["kernel"].shape == (5 * 8, D)  # 5 slots, concatenated
  assert shapes["hct"]["token_to_item"]["kernel"].shape == (8, D)


def test_bfloat16_compute_stays_close_to_float32():
  outs = []
  for dtype in ("float32", "bfloat16"):
    model = models.get_model(lib.model_config(name="heterrec", dtype=dtype), num_items=N,
                             field_specs=lib.make_specs())
    features = embedders.select_features(model.fields, lib.make_features(), N)
    params = lib.random_params(model, IDS, features, scale=0.1)
    assert all(p.dtype == np.float32 for p in jax.tree.leaves(params))
    outs.append(lib.jit(model.apply)(params, {"item_ids": IDS}, features))
  assert outs[1].dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(outs[1], np.float32), outs[0], atol=0.1)


def test_bert4rec_inference_inputs_and_last_state():
  ids = np.array([[0, 0, 4, 5], [1, 2, 0, 0], [0, 0, 0, 0], [1, 2, 3, 4]], np.int32)
  got = np.asarray(models.append_mask_token(ids, 99))
  np.testing.assert_array_equal(got, [[0, 4, 5, 99], [1, 2, 99, 0], [99, 0, 0, 0],
                                      [2, 3, 4, 99]])
  hidden = np.arange(4 * 4, dtype=np.float32).reshape(4, 4, 1)
  last = np.asarray(models.last_valid_state(hidden, got))[:, 0]
  np.testing.assert_array_equal(last, [3, 6, 8, 15])


def test_bert4rec_user_vector_sits_where_training_puts_the_latest_item():
  # Training windows are L + 1 items (the model's max_len); histories are L. The mask must go
  # after all L history items, at position L, not replace the oldest one at position L - 1.
  length = lib.MAX_LEN
  model = models.get_model(lib.model_config(name="bert4rec", max_len=length + 1),
                           num_items=lib.NUM_ITEMS)
  history = np.array([[3, 4, 5, 6, 7, 8], [0, 0, 0, 9, 10, 11]], np.int32)
  assert history.shape[1] == length
  params = model.init(jax.random.key(0), {"item_ids": history}, {})
  got = models.user_embeddings(model, params, {"item_ids": history}, {})
  mask = np.full((2, 1), model.mask_token_id, np.int32)
  expected = model.apply(params, {"item_ids": np.concatenate([history, mask], 1)}, {})[:, -1]
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_token_masks_follow_their_definitions():
  valid = np.array([[False, True, True]])
  k = 2
  for mode in ("causal", "block_causal"):
    mask = np.asarray(lib.jit(hct.token_attention_mask, static_argnums=(1, 2))(
        valid, k, mode))[0, 0]
    for q in range(6):
      for kv in range(6):
        (lq, sq), (lk, sk) = divmod(q, k), divmod(kv, k)
        if mode == "causal":
          allowed = lk < lq or (lk == lq and sk <= sq)
        else:
          allowed = lk <= lq
        expected = (allowed and valid[0, lk]) or q == kv
        assert mask[q, kv] == expected, (mode, q, kv)


def _build(**overrides):
  return models.get_model(lib.model_config(**overrides), num_items=N,
                          field_specs=lib.make_specs())


def test_clear_errors():
  # What only the data can tell: raised where the data meets the model.
  with pytest.raises(config_checks.ConfigError, match="model.fields.*does not have"):
    _build(name="heterrec", fields=("genre", "colour"))
  with pytest.raises(ValueError, match="does not have"):
    _build(name="sasrec", fields=("colour",))
  with pytest.raises(ValueError, match="encode it into a 'dense' field"):
    _build(fields=("title",))
  with pytest.raises(config_checks.ConfigError, match="needs at least one feature field"):
    models.get_model(config_lib.model_config({"name": "fusion_sasrec"}), num_items=N)
  model = _build(name="heterrec")
  features = embedders.select_features(model.fields, lib.make_features(), N)
  with pytest.raises(ValueError, match="sequence length 0"):
    jax.eval_shape(model.init, jax.random.key(0), {"item_ids": np.zeros((2, 0), np.int32)},
                   features)
  with pytest.raises(ValueError, match="max_len"):
    jax.eval_shape(model.init, jax.random.key(0), {"item_ids": np.zeros((2, L + 1), np.int32)},
                   features)
  # A catalogue that does not match the model's item count.
  bigger = lib.make_features(num_items=N + 5)
  with pytest.raises(ValueError, match="does not match the model's item count"):
    embedders.select_features(model.fields, bigger, N)
  with pytest.raises(ValueError, match="does not match the model's item count"):
    jax.eval_shape(model.init, jax.random.key(0), {"item_ids": IDS},
                   embedders.select_features(model.fields, bigger, N + 5))
  with pytest.raises(ValueError, match="lack field"):
    jax.eval_shape(model.init, jax.random.key(0), {"item_ids": IDS}, {})


@pytest.mark.parametrize("section,given,key,words", [
    ("model", dict(max_len=0), "model.max_len", "at least one position"),
    ("model", dict(name="hstu"), "model.name", "is not one of"),
    ("model", dict(n_layers=3), "model.n_layers", "unknown key"),
    ("model", dict(mask="bidirectional"), "model.mask", "is not one of"),
    ("model", dict(heads=3), "model.heads", "not divisible"),
    ("model", dict(token_heads=3, token_dim=16), "model.token_heads", "not divisible"),
    ("model", dict(pooling="max"), "model.pooling", "is not one of"),
    ("model", dict(candidate_fusion="mean"), "model.candidate_fusion", "is not one of"),
    ("model", dict(use_id=False, candidate_fusion="id"), "model.candidate_fusion", "use_id"),
    ("model", dict(name="sasrec", fusion="mean"), "model.fusion", "is not one of"),
    ("model", dict(norm="sandwich"), "model.norm", "is not one of"),
    ("model", dict(dtype="float16"), "model.dtype", "is not one of"),
    ("model", dict(d_model="64"), "model.d_model", "expects int"),
    ("loss", dict(objective="cloze"), "loss.objective", "needs a model with a mask token"),
    ("loss", dict(steps=2), "loss.steps", "unknown key"),
    ("loss", dict(k=0), "loss.k", "must be >= 1"),
    ("loss", dict(sampler="zipf"), "loss.sampler", "is not one of"),
    ("loss", dict(normalize="mean"), "loss.normalize", "is not one of"),
    ("loss", dict(mask_prob=-0.1), "loss.mask_prob", "must be in"),
    ("loss", dict(num_negatives=-1), "loss.num_negatives", "must be >= 0"),
])
def test_one_validator_names_the_key(section, given, key, words):
  with pytest.raises(config_checks.ConfigError, match=words) as error:
    if section == "model":
      config_lib.model_config(lib.tiny_model_config(**given))
    else:
      config_lib.loss_config(given, model="sasrec")
  assert error.value.key == key and "Fix:" in str(error.value)


def test_lmp_on_bert4rec_is_rejected():
  with pytest.raises(config_checks.ConfigError, match="causal model") as error:
    config_lib.loss_config({"objective": "lmp"}, model="bert4rec")
  assert error.value.key == "loss.objective"


def test_config_objects_resolve_the_section():
  c = lib.model_config(name="heterrec", token_dim=8, heads=2, mlp_ratio=3)
  assert isinstance(c, config_lib.HeterRecConfig)
  assert (c.token_dim, c.token_heads, c.item_heads, c.token_mlp_dim, c.item_mlp_dim) == (
      8, 2, 2, 24, 48)
  assert c.token_transformer.mlp_dim == 24 and c.item_transformer.mlp_dim == 48
  assert c.embedder.dim == 8
  b = lib.model_config(name="bert4rec", fields=("genre",), d_model=16)
  assert isinstance(b, config_lib.SequenceTransformerConfig)
  assert b.bidirectional and b.mask_token and not b.use_fields and b.embedder.extra_ids == 1
  assert b.field_names == ("genre",)
  with pytest.raises(dataclasses.FrozenInstanceError):
    b.d_model = 8  # pytype: disable=not-writable
