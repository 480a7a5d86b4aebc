"""Text parts of VSE++: the one vocabulary's ids, GRU encoder ignores padding."""

import pytest
import torch

from bitrieve.data.captions import END, PAD, SPECIALS, START, UNK, build_vocab, encode_tokens
from bitrieve.parts.text import FeatureTextEncoder, GRUTextEncoder, token_lengths


def test_the_one_vocabulary_is_vse_pp_s_and_the_gru_pads_with_its_pad_id():
    # data/captions.py is the package's only vocabulary: <pad>, <start>, <end>, <unk> = 0..3 as in fartashf/vsepp's
    # vocab.py; every token store (card pad_id / start_id / end_id / unk_id) and every GRU embedding row use these ids
    assert SPECIALS[:4] == ["<pad>", "<start>", "<end>", "<unk>"] and (PAD, START, END, UNK) == (0, 1, 2, 3)
    vocab = build_vocab(["a dog runs", "a dog sits", "a cat sits", "the cat"], threshold=2)
    assert vocab[4:] == ["a", "cat", "dog", "sits"]  # by count, then alphabetically
    tokens, lengths = encode_tokens(["A dog flies", "a cat"], vocab)
    assert tokens[0].tolist() == [START, vocab.index("a"), vocab.index("dog"), UNK, END]
    assert tokens[1].tolist() == [START, vocab.index("a"), vocab.index("cat"), END, PAD] and lengths.tolist() == [5, 4]
    assert GRUTextEncoder(vocab_size=len(vocab), word_dim=4, hidden=5).embed.padding_idx == PAD


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
