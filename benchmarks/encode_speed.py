"""Database encoding at NUS-WIDE shape: bitrieve's evaluation encode loop against a bare torch.matmul chain.

Run:  .venv/bin/python benchmarks/encode_speed.py [--rows N] [--threads T] [--repeats R]

DJSRH's networks at NUS-WIDE shape (image 4,096 -> 4,096 -> 32, text 1,000 -> 4,096 -> 32, z-scored inputs,
tanh(α·h)) encode N synthetic rows (default 184,577, the NUS-WIDE retrieval set) through
``bitrieve.codes.encode.encode`` - the path every evaluation takes (eval mode, inference mode, batches of 2,048).
The reference is the same arithmetic as a bare chain of ``torch.addmm`` / relu / ``torch.addmm`` / tanh on the same
batches, thread count and weights: the limit for this machine. Then mAP@all of 2,000 queries against the N codes
(bitrieve.eval) gives the encode share of an evaluation. Each timing is the best of ``--repeats``; the last line
is ``ratio=<bare/bitrieve> encode_seconds=<s> bare_seconds=<s> map_seconds=<s> encode_share=<f>``.
The issue-21 target: ratio >= 0.8.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bitrieve.codes import sign
from bitrieve.codes.encode import encode
from bitrieve.eval import map_at_k
from bitrieve.methods import get_method
from bitrieve.methods.base import DataInfo

DIMS = {"image": 4096, "text": 1000}


def best(fn, repeats: int) -> tuple[float, object]:
    out, t_best = None, float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t0)
    return t_best, out


def bare_chain(method, modality: str, x: np.ndarray, batch: int) -> torch.Tensor:
    """The encoder's arithmetic written out: (x - μ) / σ, addmm, relu, addmm, tanh(α ·)."""
    enc = method.encoders[modality]
    w1, b1 = enc.body[0].weight.detach(), enc.body[0].bias.detach()
    w2, b2 = enc.hash.fc.weight.detach(), enc.hash.fc.bias.detach()
    mean, std = getattr(method, f"{modality}_mean"), getattr(method, f"{modality}_std")
    alpha = method.alpha()
    out = []
    with torch.inference_mode():
        for s in range(0, len(x), batch):
            xb = (torch.from_numpy(x[s:s + batch]) - mean) / std
            out.append(torch.tanh(alpha * torch.addmm(b2, torch.relu(torch.addmm(b1, xb, w1.T)), w2.T)))
    return torch.cat(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=184_577)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2048)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    cls = get_method("djsrh")
    torch.manual_seed(0)
    method = cls(cls.Params(input_norm="standardize"), 32,
                 DataInfo(feature_dims=dict(DIMS), input_shapes={m: (d,) for m, d in DIMS.items()}, num_labels=10,
                          num_train=5000))
    inputs = {m: np.abs(rng.normal(size=(args.rows, d))).astype(np.float32) for m, d in DIMS.items()}
    method.prepare(type("Train", (), {"inputs": {m: a[:5000] for m, a in inputs.items()}})())
    method.eval()
    total_enc = total_bare = 0.0
    for m in DIMS:
        t_enc, h = best(lambda: encode(method, inputs[m], m, batch_size=args.batch), args.repeats)
        t_bare, ref = best(lambda: bare_chain(method, m, inputs[m], args.batch), args.repeats)
        diff = float((h - ref).abs().max())
        print(f"{m}: {args.rows:,} x {DIMS[m]:,} -> 32: bitrieve encode {t_enc:.2f} s, bare matmul chain "
              f"{t_bare:.2f} s, ratio {t_bare / t_enc:.3f}, max |difference| {diff:.2e}")
        assert diff < 1e-4, "the bare chain must compute the same codes"
        total_enc, total_bare = total_enc + t_enc, total_bare + t_bare
    codes = sign(h)
    labels = (rng.random((args.rows, 10)) < 0.2).astype(np.uint8)
    q = min(2000, args.rows)
    t_map, _ = best(lambda: map_at_k(codes[:q], codes, labels[:q], labels, k=None), 1)
    share = total_enc / (total_enc + t_map)
    print(f"mAP@all of {q:,} queries x {args.rows:,} codes: {t_map:.2f} s; encoding is {share:.0%} of this "
          f"evaluation ({args.threads} thread(s))")
    print(f"ratio={total_bare / total_enc:.3f} encode_seconds={total_enc:.2f} bare_seconds={total_bare:.2f} "
          f"map_seconds={t_map:.2f} encode_share={share:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
