"""Pieces every recommender here shares: embedders, transformer blocks, losses, ranking.

Methods (``heterrec_jax``, ``esans_jax``) import from here and never from one another:

- ``embedders``: item ids -> field tokens (``FieldEmbedder``), token fusion, field selection;
- ``transformer``: pre-/post-LN transformer blocks configured by one ``TransformerConfig``;
- ``losses``: full and sampled softmax (shared negatives, logQ correction), weighted sums, and
  the uniform and popularity negative samplers;
- ``metrics``: HR/NDCG/MRR@K from ranks, the popularity baseline;
- ``evaluation``: catalogue-sharded full ranking and exact top-K retrieval for any two towers.
"""
