"""DHN's loss, as the released code computes it (thulab/DeepHash@1453a7c, DeepHash/model/dhn/dhn.py:101-136,
``cross_entropy`` with ``normed=True`` - the released script's ``loss_type`` - and ``apply_loss_function``).

A loss = a similarity from ``bitrieve.parts.distances`` + a named reduction from ``bitrieve.losses.reducers``:

- pairwise cross-entropy of the label similarity s_ij (1 when two images share a label) given the cosine of their
  continuous codes: log(1 + exp(α cos_ij)) - s_ij α cos_ij (dhn.py:117-121);
- similar pairs weighted by n² / #similar pairs, dissimilar pairs by 1 (the released ``balance_param``, dhn.py:106-
  109), then the mean over all n² pairs (``tf.reduce_mean``);
- quantization: λ · mean((|u| - 1)²) (dhn.py:127-130).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bitrieve.losses.reducers import mean
from bitrieve.parts.distances import cosine_similarities, label_similarity


def dhn_loss(u: torch.Tensor, labels: torch.Tensor, alpha: float, quantization: float) -> dict[str, torch.Tensor]:
    s = label_similarity(labels).to(u.dtype)
    balance = (1 - s) + s * s.numel() / s.sum().clamp(min=1)  # no similar pair: the weights of the others stay 1
    logits = alpha * cosine_similarities(u)
    likelihood = mean((F.softplus(logits) - s * logits) * balance)  # softplus(x) = log(1 + exp(x)), stable
    quant = mean((u.abs() - 1) ** 2)
    return {"loss": likelihood + quantization * quant, "likelihood": likelihood, "quantization": quant}
