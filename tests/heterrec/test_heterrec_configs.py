"""Every HeterRec config file loads with its options and passes the trainer's checks."""

import pytest

from configs.heterrec import ml100k, ml1m, options, seqtext, synthetic
from heterrec_jax import train


@pytest.mark.parametrize("module,arg", [
    (synthetic, ""), (synthetic, "quick,sasrec"), (synthetic, "runlocal,bert4rec"),
    (synthetic, "heterrec,causal,meanpool,k3,noid"), (ml100k, "fusion_sasrec,concatfusion,mask"),
    (ml1m, "heterrec,l"), (seqtext, "runlocal,sasrec"), (synthetic, "quick,m"),
    (synthetic, "runlocal,s"), (synthetic, "quick,postln"), (ml100k, "runlocal,heterrec")])
def test_configs_load_and_check(module, arg):
  config = module.get_config(arg)
  train.check_config(config)
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
  if module is synthetic:  # ml100k defaults to RecBole's post-LN block
    assert config.model.norm == ("post" if "postln" in opts else "pre")
  for size, (d, heads, token_layers, item_layers) in options.SIZES.items():
    if size in opts:  # a ladder size wins over the width that quick / runlocal set
      assert (config.model.d_model, config.model.heads, config.model.token_layers,
              config.model.item_layers) == (d, heads, token_layers, item_layers)


def test_unknown_option_is_named():
  with pytest.raises(ValueError, match=r"\['bogus'\]"):
    synthetic.get_config("quick,bogus")


def test_bad_stride_names_the_key():
  config = ml100k.get_config("sasrec")
  config.input.stride = config.model.max_len + 1
  with pytest.raises(Exception, match=r"input\.stride"):
    train.check_config(config)


def test_ml100k_dropout_per_model():
  # RecBole's SASRec defaults for the single-level models; HeterRec's own, measured value.
  for name in ("sasrec", "fusion_sasrec"):
    c = ml100k.get_config(name)
    assert (c.model.dropout, c.model.attention_dropout) == (0.5, 0.5)
  c = ml100k.get_config("heterrec")
  assert (c.model.dropout, c.model.attention_dropout) == (0.2, 0.2)
