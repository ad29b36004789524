"""HeterRec: heterogeneous token flattening + hierarchical causal transformer, with baselines."""

from heterrec_jax.htfl import HTFL
from heterrec_jax.htfl import FieldEmbedder
from heterrec_jax.htfl import resolve_fields
from heterrec_jax.htfl import select_features
from heterrec_jax.htfl import TokenFusion
from heterrec_jax.hct import HCT
from heterrec_jax.losses import lmp_loss
from heterrec_jax.losses import masked_item_loss
from heterrec_jax.losses import sampled_lmp_loss
from heterrec_jax.metrics import mean_metrics
from heterrec_jax.metrics import ranking_metrics
from heterrec_jax.models import catalogue_embeddings
from heterrec_jax.models import default_model_config
from heterrec_jax.models import get_model
from heterrec_jax.models import HeterRec
from heterrec_jax.models import ItemSequenceTransformer
from heterrec_jax.models import score_catalogue
from heterrec_jax.models import user_embeddings
from heterrec_jax.objectives import default_loss_config
from heterrec_jax.objectives import make_loss_fn
