"""The prepared data set (``RecDataset``) and the pipeline that builds one from a data config.

The data config (an ml_collections ConfigDict or a plain dict; see configs/data/ and docs/data.md):

  name            the data set's name (letters, digits, ``_``; the tfds config name).
  source.format   recbole_atomic | movielens | sequence_text | table | synthetic, plus the
                  reader's own keys (``path``, column names, ...; see ``read_source``).
  preprocess      keyword arguments of ``preprocess.preprocess`` (threshold, k-core, tie-break,
                  split).
  item_features   field name -> options (see features.py); ``user_features`` likewise.
  auto_features   also add every column the options do not name, with its default kind.
  min_feature_match  the share of the data set's items (users) a feature table or vector file
                  should have rows for (default 0.9): below it a warning, none at all an error.

``CONFIG_DEFAULTS`` lists the top-level keys; an unknown top-level or ``preprocess`` key, a
negative k-core or an empty separator is an error naming the key, raised before any file is read.
Relative paths in a config are taken against the repository root.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any, Optional

import numpy as np

from common.data import features as features_lib
from common.data import movielens, readers, synthetic
from common.data.errors import DataError, check_separator, config_error, suggest
from common.data.parsing import resolve_path
from common.data.preprocess import check_core, preprocess
from common.data.raw import RawData, canonical_ids
from common.data.schema import FieldSpec

FORMATS = ("recbole_atomic", "movielens", "sequence_text", "table", "synthetic")
PARTS = ("train", "train_valid", "all")
# The data config's top-level keys and their defaults (``source`` is required).
CONFIG_DEFAULTS = {
    "name": "dataset",
    "source": {},
    "preprocess": {},
    "item_features": {},
    "user_features": {},
    "auto_features": True,
    "min_feature_match": features_lib.DEFAULT_MIN_FEATURE_MATCH,
}
# The item field of a sequence_text source's ``attributes_path`` JSON, unless
# ``source.attributes_field`` names another.
DEFAULT_ATTRIBUTES_FIELD = "attributes"
# Formats whose source.path is a folder; the others read one file.
_FOLDER_FORMATS = ("recbole_atomic", "movielens")


@dataclasses.dataclass
class RecDataset:
  """A prepared recommendation data set, held in memory.

  Users and items are remapped to 1..num_users and 1..num_items; 0 is padding everywhere.

  Attributes:
    name: the data set's name.
    offsets: int64 ``[num_users + 2]``; user u's events are ``items[offsets[u]:offsets[u+1]]``.
    items: int32 ``[num_interactions]``, item ids, chronological within each user.
    timestamps: float64 ``[num_interactions]`` (the file position where the source had none).
    n_train: int32 ``[num_users + 1]``: each user's first ``n_train[u]`` events are train,
    n_valid: int32 ``[num_users + 1]``: the next ``n_valid[u]`` valid, and the rest test.
    item_raw_ids: the raw id of each item id (index 0: None).
    user_raw_ids: the raw id of each user id (index 0: None).
    field_specs: the item fields, ``item_id`` first (see schema.py).
    item_features: field name -> array indexed by item id, row 0 all zeros (schema.py).
    user_field_specs: the user fields, ``user_id`` first.
    user_features: field name -> array indexed by user id.
    vocabs: item field name -> {"tokens": [...]} or {"edges": [...]}, plus "column".
    user_vocabs: likewise for user fields.
    counts: events left after each preprocessing step.
    config: the data config it was built from, as a plain dict.
  """

  name: str
  offsets: np.ndarray
  items: np.ndarray
  timestamps: np.ndarray
  n_train: np.ndarray
  n_valid: np.ndarray
  item_raw_ids: np.ndarray
  user_raw_ids: np.ndarray
  field_specs: list[FieldSpec]
  item_features: dict[str, Any]
  user_field_specs: list[FieldSpec]
  user_features: dict[str, Any]
  vocabs: dict[str, dict]
  user_vocabs: dict[str, dict]
  counts: dict[str, int]
  config: dict

  @property
  def num_users(self) -> int:
    return len(self.offsets) - 2

  @property
  def num_items(self) -> int:
    return len(self.item_raw_ids) - 1

  @property
  def num_interactions(self) -> int:
    return len(self.items)

  def lengths(self, part: str = "all") -> np.ndarray:
    """int64 ``[num_users + 1]``: each user's number of events in ``part``.

    Args:
      part: ``train`` (the train segment), ``train_valid`` (train and valid) or ``all``.
    """
    if part == "train":
      return self.n_train.astype(np.int64)
    if part == "train_valid":
      return self.n_train.astype(np.int64) + self.n_valid
    if part == "all":
      return np.diff(self.offsets)
    raise ValueError(f"part {part!r} is not one of {PARTS}.")

  def sequence(self, user: int, part: str = "all") -> np.ndarray:
    """User ``user``'s item ids in ``part`` (see ``lengths``), oldest first."""
    start = self.offsets[user]
    return self.items[start:start + self.lengths(part)[user]]

  def item_counts(self, part: str = "train") -> np.ndarray:
    """int64 ``[num_items + 1]``: events per item in ``part`` (popularity: logQ, baselines)."""
    lengths = self.lengths(part)
    pos = np.arange(len(self.items)) - np.repeat(self.offsets[:-1], np.diff(self.offsets))
    keep = pos < np.repeat(lengths, np.diff(self.offsets))
    return np.bincount(self.items[keep], minlength=self.num_items + 1)

  def feature_spec(self, name: str) -> FieldSpec:
    """The item field named ``name``."""
    for spec in self.field_specs:
      if spec.name == name:
        return spec
    raise KeyError(f"no item field {name!r}; the fields are {[s.name for s in self.field_specs]}.")


def to_plain(cfg) -> dict:
  """A ConfigDict (or dict) as a plain, JSON-friendly dict."""
  if cfg is None:
    return {}
  if hasattr(cfg, "to_dict"):
    cfg = cfg.to_dict()
  return {k: to_plain(v) if isinstance(v, dict) or hasattr(v, "to_dict") else
          (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}


def read_source(source: dict, item_fields: Optional[dict] = None,
                user_fields: Optional[dict] = None) -> RawData:
  """Runs the reader the source config names.

  Args:
    source: ``format`` plus the reader's keys: ``path`` (a folder for recbole_atomic and
      movielens, a file otherwise) and, by format, recbole_atomic: ``dataset``, ``user_field``,
      ``item_field``, ``rating_field``, ``time_field``, ``seq_separator``; movielens:
      ``variant``; sequence_text: ``has_user_id``, ``separator``, ``item_path`` (optional item
      table, read as for ``table``) or ``attributes_path`` (an ``item2attributes`` JSON, read
      by ``readers.read_item_attributes`` into the field ``attributes_field``, default
      ``attributes``; every item of the sequences needs an entry); table: ``user_col``,
      ``item_col``, ``rating_col``, ``time_col``, ``item_path``, ``item_id_col``, ``user_path``,
      ``user_id_col``, ``file_format``, ``delimiter``; synthetic: the generator's keys
      (synthetic.py). All take ``encoding``.
    item_fields: the item feature options; a generic table reads the columns they name.
    user_fields: likewise for users.

  Raises:
    DataError: an unknown format, or any reader error.
  """
  source = to_plain(source)
  fmt = source.get("format")
  if fmt not in FORMATS:
    raise DataError(f"data.source.format {fmt!r} is not one of {FORMATS}.")
  if fmt == "synthetic":
    raw, _ = synthetic.generate(source)
    return raw
  if not source.get("path"):
    raise DataError(f"data.source.path is required for format {fmt!r}.")
  path = resolve_path(source["path"])
  if fmt in _FOLDER_FORMATS and os.path.isfile(path):
    raise DataError(f"source.path is a file, but format {fmt!r} reads a folder; set it to the "
                    "folder that holds the files.", path=path)
  if fmt not in _FOLDER_FORMATS and os.path.isdir(path):
    raise DataError(f"source.path is a directory, but format {fmt!r} reads one file; set it to "
                    "the events file inside it.", path=path)
  enc = source.get("encoding", "auto")
  opt = lambda k: resolve_path(source[k]) if source.get(k) else None
  if fmt == "recbole_atomic":
    keys = ("dataset", "user_field", "item_field", "rating_field", "time_field")
    kwargs = {k: source[k] for k in keys if source.get(k)}
    if source.get("seq_separator") is not None:  # "" is refused by the reader, not skipped
      kwargs["seq_separator"] = source["seq_separator"]
    return readers.read_recbole_atomic(path, encoding=enc, **kwargs)
  if fmt == "movielens":
    return movielens.read_movielens(path, source.get("variant"), encoding=enc)
  file_cols = lambda fields: ({k: v for k, v in fields.items() if not v.get("path")}
                              if fields else None)
  if fmt == "sequence_text":
    raw = readers.read_sequence_text(path, has_user_id=source.get("has_user_id", True),
                                     separator=source.get("separator"), encoding=enc)
    if source.get("attributes_path"):
      raw.items = readers.read_item_attributes(
          opt("attributes_path"), field=attributes_field(source), encoding=enc)
      readers.require_item_rows(raw.items, raw.interactions, "source.attributes_path")
      raw.interactions.items, raw.items.ids = canonical_ids(raw.interactions.items,
                                                            raw.items.ids)
    elif source.get("item_path"):
      raw.items = readers.read_table_features(
          opt("item_path"), id_col=source.get("item_id_col", "item_id"),
          columns=file_cols(item_fields), delimiter=source.get("delimiter"), encoding=enc)
      raw.interactions.items, raw.items.ids = canonical_ids(raw.interactions.items,
                                                            raw.items.ids)
    return raw
  for key in ("user_col", "item_col"):
    if not source.get(key):
      raise DataError(f"data.source.{key} is required for format 'table'.", path=path)
  return readers.read_table(
      path, user_col=source["user_col"], item_col=source["item_col"],
      rating_col=source.get("rating_col"), time_col=source.get("time_col"),
      item_path=opt("item_path"), item_id_col=source.get("item_id_col"),
      item_columns=file_cols(item_fields), user_path=opt("user_path"),
      user_id_col=source.get("user_id_col"), user_columns=file_cols(user_fields),
      format=source.get("file_format"), delimiter=source.get("delimiter"), encoding=enc)


def attributes_field(source: dict) -> str:
  """The item field a ``sequence_text`` source's ``attributes_path`` JSON becomes."""
  return source.get("attributes_field") or DEFAULT_ATTRIBUTES_FIELD


def _with_attributes(fields: dict, source: dict) -> dict:
  """Item field options with the attributes field added (kind ``multi``) when the source has an
  attributes JSON, so that it is built even with ``auto_features`` off; a field the config
  lists keeps its options (``max_len``, ``min_count``, or ``drop``)."""
  if not source.get("attributes_path"):
    return fields
  name = attributes_field(source)
  fields = dict(fields)
  fields[name] = {"kind": "multi", **(fields.get(name) or {})}
  return fields


def _dense_files(fields: dict) -> dict:
  out = {}
  for name, opts in (fields or {}).items():
    if opts.get("path"):
      if opts.get("kind", "dense") != "dense":
        raise DataError(f"feature field {name!r}: a 'path' is only for kind 'dense'.")
      out[name] = readers.read_dense(resolve_path(opts["path"]),
                                     resolve_path(opts["ids_path"]) if opts.get("ids_path")
                                     else None)
  return out


_PREPROCESS_KEYS = tuple(p for p in inspect.signature(preprocess).parameters if p != "inter")


def check_config(cfg: dict) -> None:
  """Checks a data config's keys and the values that would otherwise be misread silently.

  Runs before any file is read. Wrong types deeper down are reported where they are used.

  Raises:
    DataError: a config error naming the key and the fix.
  """
  for key in cfg:
    if key not in CONFIG_DEFAULTS:
      raise config_error(key, "unknown data config key", suggest(key, CONFIG_DEFAULTS))
  pre = cfg.get("preprocess") or {}
  for key, value in pre.items():
    if key not in _PREPROCESS_KEYS:
      raise config_error(f"preprocess.{key}", "unknown key", suggest(key, _PREPROCESS_KEYS))
  for key in ("user_core", "item_core"):
    check_core(key, pre.get(key, 0))
  share = cfg.get("min_feature_match", CONFIG_DEFAULTS["min_feature_match"])
  if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
    raise config_error("min_feature_match", f"a share in [0, 1] is expected, got {share!r}",
                       f"set it to e.g. {CONFIG_DEFAULTS['min_feature_match']} (the default), or "
                       "0 to accept any partial match")
  src = cfg.get("source") or {}
  for key in ("separator", "seq_separator"):
    check_separator(f"source.{key}", src.get(key))
  _check_attributes_keys(src)
  for section in ("item_features", "user_features"):
    for name, opts in (cfg.get(section) or {}).items():
      check_separator(f"{section}.{name}.sep", (opts or {}).get("sep"))


def _check_attributes_keys(src: dict) -> None:
  """``source.attributes_path``/``attributes_field``: only for sequence_text, not with an item
  table, and a usable field name."""
  field = src.get("attributes_field")
  if field is not None and (not isinstance(field, str) or not field or field == "item_id"):
    raise config_error("source.attributes_field", f"{field!r} cannot name the attributes field",
                       f"remove the key for the default, {DEFAULT_ATTRIBUTES_FIELD!r}, or set "
                       "another non-empty name")
  if not src.get("attributes_path"):
    return  # a field name alone is harmless: --config.source.attributes_path='' turns them off
  if src.get("format") != "sequence_text":
    raise config_error("source.attributes_path", f"format {src.get('format')!r} does not read "
                       "an item2attributes JSON (only 'sequence_text' does)",
                       "remove the key, or give the attributes as an item table of this format")
  if src.get("item_path"):
    raise config_error("source.attributes_path", "source.item_path is set too, and the items "
                       "take one table", "keep one of the two keys (or merge the attributes "
                       "into the item table as a list column and drop attributes_path)")


def build_dataset(config) -> RecDataset:
  """Reads, preprocesses and featurises a data set as its config says, in memory.

  Args:
    config: the data config (see the module docstring).

  Returns:
    The prepared data set.

  Raises:
    DataError: any problem with the input, located by file, line and column.
  """
  cfg = to_plain(config)
  check_config(cfg)
  name = cfg.get("name") or "dataset"
  item_fields = cfg.get("item_features") or {}
  user_fields = cfg.get("user_features") or {}
  auto = cfg.get("auto_features", True)
  item_fields = _with_attributes(item_fields, cfg.get("source") or {})
  raw = read_source(cfg.get("source") or {}, item_fields, user_fields)
  raw.dense.update(_dense_files(item_fields))
  pre = dict(cfg.get("preprocess") or {})
  src = cfg.get("source") or {}
  pre.setdefault("rating_column", src.get("rating_field") or src.get("rating_col") or "rating")
  pre.setdefault("time_column", src.get("time_field") or src.get("time_col") or "timestamp")
  seqs = preprocess(raw.interactions, **pre)
  share = cfg.get("min_feature_match", CONFIG_DEFAULTS["min_feature_match"])
  specs, arrays, vocabs = features_lib.build_features(
      seqs.item_raw_ids, raw.items, raw.dense, item_fields, auto, "item_id", share)
  user_specs, user_arrays, user_vocabs = features_lib.build_features(
      seqs.user_raw_ids, raw.users, None, user_fields, auto, "user_id", share)
  return RecDataset(name=name, offsets=seqs.offsets, items=seqs.items,
                    timestamps=seqs.timestamps, n_train=seqs.n_train, n_valid=seqs.n_valid,
                    item_raw_ids=seqs.item_raw_ids, user_raw_ids=seqs.user_raw_ids,
                    field_specs=specs, item_features=arrays, user_field_specs=user_specs,
                    user_features=user_arrays, vocabs=vocabs, user_vocabs=user_vocabs,
                    counts=seqs.counts, config=cfg)
