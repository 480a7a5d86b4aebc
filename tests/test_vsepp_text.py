"""Text parts of VSE++: tokeniser, vocabulary round trip, GRU encoder ignores padding."""

import numpy as np
import pytest
import torch

from bitrieve.parts.text import FeatureTextEncoder, GRUTextEncoder, Vocabulary, token_lengths, tokenize


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("A man's dog, running!  Fast.") == ["a", "man's", "dog", "running", "fast"]


def test_vocabulary_build_threshold_order_and_round_trip(tmp_path):
    texts = ["a dog runs", "a dog sits", "a cat sits", "the cat"]
    v = Vocabulary.build(texts, min_count=2)
    assert v.itos[:4] == list(Vocabulary.SPECIALS)
    assert v.itos[4:] == ["a", "cat", "dog", "sits"]  # by count, then alphabetically
    ids = v.encode("A dog flies")
    assert ids == [Vocabulary.START, v.stoi["a"], v.stoi["dog"], Vocabulary.UNK, Vocabulary.END]
    v.save(tmp_path / "vocab.json")
    w = Vocabulary.load(tmp_path / "vocab.json")
    assert w.itos == v.itos
    batch = v.encode_batch(["a dog", "the cat sits"])
    assert batch.dtype == np.int64 and batch.shape == (2, 5) and batch[0, -1] == Vocabulary.PAD


def test_load_rejects_foreign_json(tmp_path):
    (tmp_path / "v.json").write_text('{"itos": ["x", "y"]}')
    with pytest.raises(ValueError, match="not a bitrieve vocabulary"):
        Vocabulary.load(tmp_path / "v.json")


def test_gru_output_ignores_padding_and_has_hidden_width():
    torch.manual_seed(0)
    enc = GRUTextEncoder(vocab_size=20, word_dim=6, hidden=9)
    short = torch.tensor([[5, 6, 7, 0, 0]])
    longer_pad = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0]])
    other = torch.tensor([[5, 6, 7, 8, 9]])
    a, b, c = enc(short), enc(longer_pad), enc(other)
    assert a.shape == (1, 9)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    # batched = one at a time (packing keeps the input order)
    both = enc(torch.cat([other, short]))
    torch.testing.assert_close(both, torch.cat([c, a]))


def test_empty_caption_and_out_of_range_ids_are_errors():
    enc = GRUTextEncoder(vocab_size=10, word_dim=4, hidden=5)
    with pytest.raises(ValueError, match="all padding"):
        token_lengths(torch.tensor([[1, 2], [0, 0]]))
    with pytest.raises(ValueError, match="token ids"):
        enc(torch.tensor([[3, 12]]))


def test_feature_text_encoder_width():
    assert FeatureTextEncoder(10, 7)(torch.randn(3, 10)).shape == (3, 7)
