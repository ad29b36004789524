"""HeterRec: heterogeneous token flattening + hierarchical causal transformer, with baselines.

The pieces shared with other methods (embedders, transformer blocks, softmax losses, samplers,
metrics, sharded evaluation) live in ``common.recsys``.
"""

from heterrec_jax.config import HeterRecConfig
from heterrec_jax.config import LossConfig
from heterrec_jax.config import SequenceTransformerConfig
from heterrec_jax.config import validate
from heterrec_jax.hct import HCT
from heterrec_jax.htfl import HTFL
from heterrec_jax.models import catalogue_embeddings
from heterrec_jax.models import get_model
from heterrec_jax.models import HeterRec
from heterrec_jax.models import ItemSequenceTransformer
from heterrec_jax.models import user_embeddings
from heterrec_jax.objectives import make_loss_fn
