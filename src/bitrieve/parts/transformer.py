"""Transformer encoders over per-sample tokens (UCMFH's fusion transformer and the variant's modality transformers).

UCMFH (Xia et al., "When CLIP meets cross-modal hashing retrieval: A new strong baseline", Information Fusion 99,
2023, Sec. 3.2; released code ``model.py: FuseTransEncoder``) feeds each sample as ONE token: the concatenation of
its CLIP image and text features (1,024-d), through a 2-layer ``nn.TransformerEncoder`` (4 heads, feed-forward 2,048,
dropout 0.1, post-LayerNorm, ReLU - PyTorch's defaults). With a length-1 sequence self-attention is the value/output
projection of the token itself, so the layer acts per sample.

Released-code quirk, reproduced only behind ``whole_batch_sequence=True``: at *evaluation* the released code passes
an unbatched (B, 1024) tensor, which PyTorch reads as ONE sequence of B tokens, so test samples attend to each other
(with attention weights that never saw more than one token during training) and a code depends on the other
samples in its evaluation batch. bitrieve's default is the training-time behaviour (each sample its own sequence).
"""

from __future__ import annotations

import torch
from torch import nn

from bitrieve.parts.hashing import l2_normalize


class TokenTransformer(nn.Module):
    """``layers`` × nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout), post-LN, over (N, d) tokens.

    forward(x (N, d), whole_batch_sequence=False) -> (N, d). Default: each row is its own length-1 sequence.
    ``final_norm``: one more LayerNorm(d_model) on the output (the UCMFH fork's ``UnimodalTransformer``, model.py:19/26;
    UCMFH's own fusion transformer has none).
    """

    def __init__(self, d_model: int, nhead: int, layers: int = 2, dim_feedforward: int = 2048, dropout: float = 0.1,
                 final_norm: bool = False):
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"TokenTransformer: d_model {d_model} is not divisible by nhead {nhead}")
        layer = nn.TransformerEncoderLayer(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward,
                                           dropout=dropout, batch_first=True, norm_first=False)
        # enable_nested_tensor only matters for padded batches; off to silence the warning and keep one code path
        self.encoder = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model) if final_norm else nn.Identity()
        self.d_model = d_model

    def forward(self, x: torch.Tensor, whole_batch_sequence: bool = False) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.d_model:
            raise ValueError(f"TokenTransformer: expected tokens (N, {self.d_model}), got {tuple(x.shape)}")
        seq = x.unsqueeze(0) if whole_batch_sequence else x.unsqueeze(1)  # (1, N, d) or (N, 1, d)
        out = self.encoder(seq)
        return self.norm(out.squeeze(0) if whole_batch_sequence else out.squeeze(1))


class FusionTransformer(nn.Module):
    """UCMFH's fusion encoder: token [image ; text] -> TokenTransformer -> L2-normalise over all dims -> split.

    forward(image (N, d_img), text (N, d_txt)) -> (image half (N, d_img), text half (N, d_txt)). Following the
    released code the normalisation is over the whole 1,024-d output *before* the split, so each half has norm ≤ 1.
    """

    def __init__(self, image_dim: int = 512, text_dim: int = 512, nhead: int = 4, layers: int = 2,
                 dim_feedforward: int = 2048, dropout: float = 0.1):
        super().__init__()
        self.image_dim, self.text_dim = image_dim, text_dim
        self.transformer = TokenTransformer(image_dim + text_dim, nhead, layers, dim_feedforward, dropout)

    def forward(self, image: torch.Tensor, text: torch.Tensor, whole_batch_sequence: bool = False):
        if image.shape[0] != text.shape[0]:
            raise ValueError(f"FusionTransformer: image has {image.shape[0]} rows, text {text.shape[0]}")
        out = l2_normalize(self.transformer(torch.cat([image, text], dim=1), whole_batch_sequence))
        return out[:, : self.image_dim], out[:, self.image_dim:]
