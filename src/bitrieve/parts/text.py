"""Text side of image-text matching: a word-embedding + GRU encoder (VSE++) and an encoder for precomputed text
features (e.g. Wiki's 10-d LDA topics).

Token ids come from the one vocabulary, ``bitrieve.data.captions`` (VSE++'s: <pad>=0, <start>=1, <end>=2, <unk>=3),
written into the store by ``bitrieve data convert``. Token batches are padded (N, L) with id 0 (``PAD``); lengths are
the number of non-padding ids, so no separate lengths array needs to travel with the data.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from bitrieve.data.captions import PAD


def token_lengths(tokens: torch.Tensor) -> torch.Tensor:
    """Number of non-padding ids per row of a padded (N, L) batch; errors on empty rows."""
    lengths = (tokens != PAD).sum(dim=1)
    if bool((lengths == 0).any()):
        bad = int((lengths == 0).nonzero()[0, 0])
        raise ValueError(f"token row {bad} is all padding (id 0); every caption needs at least one token")
    return lengths


class GRUTextEncoder(nn.Module):
    """VSE++ text encoder: word embedding (300-d, uniform(-0.1, 0.1) init) -> 1-layer GRU -> last hidden state.

    Faghri et al., BMVC 2018, Sec. 3 / official ``EncoderText``: the caption embedding is the GRU output at the last
    real token (padding excluded via packed sequences). The caller L2-normalises.
    """

    def __init__(self, vocab_size: int, word_dim: int = 300, hidden: int = 1024, num_layers: int = 1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=PAD)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        self.gru = nn.GRU(word_dim, hidden, num_layers=num_layers, batch_first=True)
        self.out_dim = hidden

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2:
            raise ValueError(f"GRUTextEncoder: expected padded token ids (N, L), got shape {tuple(tokens.shape)}")
        tokens = tokens.long()
        if int(tokens.max()) >= self.embed.num_embeddings or int(tokens.min()) < 0:
            raise ValueError(f"GRUTextEncoder: token ids must lie in [0, {self.embed.num_embeddings}), got "
                             f"[{int(tokens.min())}, {int(tokens.max())}]")
        lengths = token_lengths(tokens)
        packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)  # h: (layers, N, hidden), in the input order
        return h[-1]


class FeatureTextEncoder(nn.Module):
    """Precomputed text features (e.g. Wiki's LDA topics) -> Linear. The caller L2-normalises."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1).float())
