"""Caption text -> padded token ids (VSE++ style) or bag-of-words, with the vocabulary built from training rows only.

Representation of caption data in `CrossModalData` (see docs/datasets.md): one row per caption. ``inputs["text"]``
is int32 (N, L) token ids padded with 0; side column ``text_lengths`` (N,) counts tokens including <start>/<end>;
side column ``group`` (N,) is the image id the caption belongs to, and ``inputs["image"]`` repeats that image's
input on each of its caption rows. Recall@K (image->text) counts a hit when any caption of the query image's group is
retrieved; text->image uses the group as the one relevant image.

Vocabulary as in VSE++ (Faghri et al., BMVC 2018, official code `vocab.py`): special tokens <pad>=0, <start>=1,
<end>=2, <unk>=3, then words seen at least ``threshold`` times (VSE++ uses 4) in the training captions, ordered by
frequency (ties alphabetical, so the ids are deterministic). Deviation: VSE++ tokenises with nltk `word_tokenize`;
we lower-case and split on ``[a-z0-9]+`` (no nltk dependency), which drops punctuation tokens.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

SPECIALS = ["<pad>", "<start>", "<end>", "<unk>"]
PAD, START, END, UNK = range(len(SPECIALS))  # the ids every token store and every trained text encoder use
_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def build_vocab(captions: list[str] | np.ndarray, threshold: int = 4) -> list[str]:
    counts = Counter(w for c in captions for w in tokenize(str(c)))
    words = sorted((w for w, k in counts.items() if k >= threshold), key=lambda w: (-counts[w], w))
    return SPECIALS + words


def encode_tokens(captions: list[str] | np.ndarray, vocab: list[str],
                  max_len: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Token ids int32 (N, L) padded with 0, L = longest caption (capped at ``max_len``); lengths int32 (N,)."""
    index = {w: i for i, w in enumerate(vocab)}
    unk = index["<unk>"]
    seqs = [[START] + [index.get(w, unk) for w in tokenize(str(c))][: max_len - 2] + [END] for c in captions]
    width = max((len(s) for s in seqs), default=2)
    out = np.zeros((len(seqs), width), dtype=np.int32)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out, np.array([len(s) for s in seqs], dtype=np.int32)


def bag_of_words(captions: list[str] | np.ndarray, vocab: list[str]) -> np.ndarray:
    """Binary bag-of-words float32 (N, V) over ``vocab`` (special tokens excluded) - the tag-BoW convention of the
    MIRFlickr/NUS-WIDE releases (YAll is 0/1 per tag)."""
    words = [w for w in vocab if w not in SPECIALS]
    index = {w: i for i, w in enumerate(words)}
    out = np.zeros((len(captions), len(words)), dtype=np.float32)
    for i, c in enumerate(captions):
        for w in tokenize(str(c)):
            j = index.get(w)
            if j is not None:
                out[i, j] = 1.0
    return out


def top_words(captions: list[str] | np.ndarray, size: int) -> list[str]:
    counts = Counter(w for c in captions for w in tokenize(str(c)))
    return SPECIALS + sorted(counts, key=lambda w: (-counts[w], w))[:size]
