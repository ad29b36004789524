"""Every HeterRec config file loads with its options, passes the validator, and is plain data."""

import glob
import os
import subprocess
import sys

import pytest

from configs.heterrec import amazon_toys, ml100k, ml1m, options, seqtext, synthetic
from heterrec_jax import config as config_lib
from heterrec_jax import train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("module,arg", [
    (synthetic, ""), (synthetic, "quick,sasrec"), (synthetic, "runlocal,bert4rec"),
    (synthetic, "heterrec,causal,meanpool,k3,noid"), (ml100k, "fusion_sasrec,concatfusion,mask"),
    (ml1m, "heterrec,l"), (seqtext, "runlocal,sasrec"), (synthetic, "quick,m"),
    (synthetic, "runlocal,s"), (synthetic, "quick,postln"), (ml100k, "runlocal,heterrec"),
    (amazon_toys, ""), (amazon_toys, "runlocal,heterrec,pervalue"), (amazon_toys, "sasrec"),
    (amazon_toys, "fusion_sasrec"), (amazon_toys, "bert4rec"), (amazon_toys, "heterrec,regularized"),
    (synthetic, "quick,regularized")])
def test_configs_load_and_check(module, arg):
  config = module.get_config(arg)
  model, loss = config_lib.validate(config)
  assert model.max_len == config.model.max_len and loss.k == config.loss.k
  opts = options.parse(arg)
  for name in options.MODELS:
    if name in opts:
      assert config.model.name == name
  if "bert4rec" in opts:
    assert config.loss.objective == "cloze"
  if "k3" in opts:
    assert config.loss.k == 3
  if "postln" in opts:
    assert config.model.norm == "post"
  assert config.model.multi_tokens == ("per_value" if "pervalue" in opts else "pooled")
  if "regularized" in opts:
    assert (config.model.pooling, config.model.candidate_fusion) == ("mean", "sum")
    assert config.model.dropout == config.model.attention_dropout == 0.5
  if module is synthetic:  # ml100k defaults to RecBole's post-LN block
    assert config.model.norm == ("post" if "postln" in opts else "pre")
  for size, (d, heads, token_layers, item_layers) in options.SIZES.items():
    if size in opts:  # a ladder size wins over the width that quick / runlocal set
      assert (config.model.d_model, config.model.heads, config.model.token_layers,
              config.model.item_layers) == (d, heads, token_layers, item_layers)


def test_sequence_file_configs_mask_the_history():
  # One protocol for the sequence-file configs: the user's history is never ranked.
  for module in (seqtext, amazon_toys):
    for arg in ("", "sasrec", "runlocal"):
      assert module.get_config(arg).eval.mask_history, (module.__name__, arg)
  assert amazon_toys.get_config().model.name == "heterrec"
  toys = amazon_toys.get_config("heterrec")
  # ML-100K's HeterRec recipe: one token layer, dropout 0.2 (0.5 for the baselines).
  assert (toys.model.token_layers, toys.model.dropout) == (1, 0.2)
  assert amazon_toys.get_config("sasrec").model.dropout == 0.5
  # The measured Toys remedy is an option, not a silent default: it must survive finish(), which
  # otherwise sets HeterRec's 0.2.
  reg = amazon_toys.get_config("heterrec,regularized")
  assert (reg.model.dropout, reg.model.pooling, reg.model.candidate_fusion) == (0.5, "mean", "sum")


def test_seqtext_data_config_reads_a_sequence_file(tmp_path):
  # configs/data/seqtext.py, the data of configs/heterrec/seqtext.py: ids only, or with the
  # attributes of an item2attributes JSON.
  from common import data as data_lib  # pylint: disable=g-import-not-at-top
  path = tmp_path / "seq.txt"
  path.write_text("".join(f"u{u} " + " ".join(str(1 + (u + j) % 6) for j in range(6)) + "\n"
                          for u in range(6)))
  config = seqtext.get_config("runlocal")
  config.data.source.path = str(path)
  ds = data_lib.build_dataset(config.data)
  assert (ds.num_users, ds.num_items) == (6, 6)
  assert [s.name for s in ds.field_specs] == ["item_id"]
  (tmp_path / "attrs.json").write_text(
      "{" + ", ".join(f'"{i}": [{i % 3 + 1}, 7]' for i in range(1, 7)) + "}")
  config.data.source.attributes_path = str(tmp_path / "attrs.json")
  spec = data_lib.build_dataset(config.data).feature_spec("attributes")
  assert (spec.kind, spec.max_len) == ("multi", 2)


def test_unknown_option_is_named():
  with pytest.raises(ValueError, match=r"\['bogus'\]"):
    synthetic.get_config("quick,bogus")


def test_bad_stride_names_the_key():
  config = ml100k.get_config("sasrec")
  config.input.stride = config.model.max_len + 1
  with pytest.raises(config_lib.ConfigError, match=r"input\.stride"):
    config_lib.validate(config)


def test_ml100k_dropout_per_model():
  # RecBole's SASRec defaults for the single-level models; HeterRec's own, measured value.
  for name in ("sasrec", "fusion_sasrec"):
    c = ml100k.get_config(name)
    assert (c.model.dropout, c.model.attention_dropout) == (0.5, 0.5)
  c = ml100k.get_config("heterrec")
  assert (c.model.dropout, c.model.attention_dropout) == (0.2, 0.2)


def test_default_config_is_the_plain_defaults_module():
  from configs.heterrec import defaults  # pylint: disable=g-import-not-at-top
  assert train.get_default_config().to_dict() == defaults.get_default_config().to_dict()


def test_loading_every_config_imports_no_jax():
  # Configs are data: loading one must not import JAX, the models or the trainer. A fresh
  # interpreter, since this test process has JAX loaded already.
  names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(
      REPO, "configs", "heterrec", "*.py")) if not p.endswith("__init__.py"))
  assert {"defaults", "options", "synthetic", "ml100k"} <= set(names)
  script = "\n".join([
      "import importlib, sys",
      f"for name in {names!r}:",
      "  module = importlib.import_module('configs.heterrec.' + name)",
      "  if hasattr(module, 'get_config'):",
      "    module.get_config()",
      "bad = sorted(m for m in sys.modules if m.split('.')[0] in",
      "             ('jax', 'flax', 'heterrec_jax', 'common'))",
      "assert not bad, bad",
      "print('ok', len(" + repr(names) + "))"])
  out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                       check=False)
  assert out.returncode == 0, out.stderr
  assert out.stdout.startswith("ok")
