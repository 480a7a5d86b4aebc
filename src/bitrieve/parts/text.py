"""Text side of image-text matching: tokeniser and vocabulary, a word-embedding + GRU encoder (VSE++), and an
encoder for precomputed text features (e.g. Wiki's 10-d LDA topics).

Token batches are padded int64 (N, L) with id 0 = padding (``Vocabulary.PAD``); lengths are the number of
non-padding ids, so no separate lengths array needs to travel with the data.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (letters/digits, keeping English contractions); punctuation dropped."""
    return _WORD.findall(text.lower())


class Vocabulary:
    """word <-> id. Ids 0..3 are reserved: <pad>, <unk>, <start>, <end> (as in VSE++'s vocabulary)."""

    PAD, UNK, START, END = 0, 1, 2, 3
    SPECIALS = ("<pad>", "<unk>", "<start>", "<end>")

    def __init__(self, words: Iterable[str]):
        self.itos = list(self.SPECIALS) + [w for w in words if w not in self.SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("Vocabulary: duplicate words")

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 4) -> "Vocabulary":
        """Words seen at least ``min_count`` times (VSE++ uses a threshold of 4), most frequent first, ties by word."""
        counts = Counter(w for t in texts for w in tokenize(t))
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(words)

    def encode(self, text: str, add_bounds: bool = True) -> list[int]:
        ids = [self.stoi.get(w, self.UNK) for w in tokenize(text)]
        return [self.START, *ids, self.END] if add_bounds else ids

    def encode_batch(self, texts: Iterable[str], max_len: int | None = None, add_bounds: bool = True) -> np.ndarray:
        """Padded int64 (N, L) ids; L = longest (or ``max_len``, truncating)."""
        seqs = [self.encode(t, add_bounds) for t in texts]
        if max_len is not None:
            seqs = [s[:max_len] for s in seqs]
        width = max((len(s) for s in seqs), default=1) or 1
        out = np.zeros((len(seqs), width), dtype=np.int64)
        for i, s in enumerate(seqs):
            if not s:
                raise ValueError(f"text {i} has no tokens after tokenisation")
            out[i, : len(s)] = s
        return out

    def save(self, path: str | Path) -> None:
        """JSON list of words, written atomically."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"itos": self.itos}, f)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        with open(path) as f:
            d = json.load(f)
        itos = d.get("itos") if isinstance(d, dict) else None
        if not isinstance(itos, list) or tuple(itos[:4]) != cls.SPECIALS:
            raise ValueError(f"{path}: not a bitrieve vocabulary (expected {{'itos': ['<pad>', '<unk>', ...]}})")
        return cls(itos[4:])


def token_lengths(tokens: torch.Tensor) -> torch.Tensor:
    """Number of non-padding ids per row of a padded (N, L) batch; errors on empty rows."""
    lengths = (tokens != Vocabulary.PAD).sum(dim=1)
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
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=Vocabulary.PAD)
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
