"""Fixtures for the data-layer tests. Puts the repository root (for ``common``) and this folder
(for ``data_fixtures``) on sys.path, so the tests run under any pytest import mode."""

import os
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.dirname(os.path.dirname(_HERE)), _HERE):
  if _path not in sys.path:
    sys.path.insert(0, _path)

from data_fixtures import ML100K  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture
def ml100k_path():
  if not os.path.exists(os.path.join(ML100K, "ml-100k.inter")):
    pytest.skip(f"ML-100K (RecBole atomic) not found at {os.path.normpath(ML100K)}; the shared "
                "data folder is absent on this machine.")
  return ML100K


@pytest.fixture(autouse=True, scope="session")
def _quiet_tfds():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tfds.disable_progress_bar()
  yield
