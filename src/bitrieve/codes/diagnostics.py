"""Statistics of a set of codes, for any method: per-bit balance and entropy, distinct codes, quantization gap.

The one definition of bit balance: the engine's code diagnostics of every run (results.json ``diagnostics.codes``)
and a method's own monitoring scalars (AGCH's ``bit_balance_v``) call `bit_balance`. Imports torch (as
``bitrieve.codes.encode``); ``bitrieve.codes`` itself loads numpy only.
"""

from __future__ import annotations

import torch

from bitrieve.codes import sign_bits


def bit_balance(signs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(balance, entropy)`` per bit of ±1 sign codes (N, bits): balance = the mean of each bit (0 = balanced, ±1 =
    constant), entropy in bits of its +1 share (1 = balanced, 0 for a constant bit)."""
    balance = signs.mean(0)
    p = ((1 + balance) / 2).clamp(1e-12, 1 - 1e-12)
    entropy = -(p * p.log2() + (1 - p) * (1 - p).log2())
    entropy = torch.where(balance.abs() == 1, torch.zeros_like(entropy), entropy)
    return balance, entropy


def code_diagnostics(h: torch.Tensor) -> dict[str, float]:
    """Generic code statistics for any method, over one set of continuous codes ``h`` (N, bits).

    bit balance and entropy: `bit_balance` of the sign codes; distinct codes and the largest share of items sharing
    one code; quantization gap = mean |c - sign(c)| where c is h itself when it stays within [-1, 1] (tanh-like
    outputs) and tanh(h) otherwise.
    """
    h = h.float()
    b = torch.where(torch.from_numpy(sign_bits(h)), 1.0, -1.0)  # the sign rule of bitrieve.codes
    n, bits = b.shape
    balance, entropy = bit_balance(b)
    _, counts = torch.unique(b, dim=0, return_counts=True)
    c = h if h.abs().max() <= 1 else torch.tanh(h)
    return {
        "n_items": float(n),
        "mean_abs_bit_balance": float(balance.abs().mean()),
        "max_abs_bit_balance": float(balance.abs().max()),
        "constant_bits": float((balance.abs() == 1).sum()),
        "constant_bit_fraction": float((balance.abs() == 1).float().mean()),
        "mean_bit_entropy": float(entropy.mean()),
        "distinct_codes": float(counts.numel()),
        "largest_code_share": float(counts.max()) / n,
        "quantization_gap": float((c - b).abs().mean()),
    }
