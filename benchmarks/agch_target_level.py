"""Where AGCH's training target S sits on a store: mean, share of positive pairs and correlation with label sharing
for the paper's S, the re-normalised S and the re-normalised S with the neutral point at the 0.8 quantile
(docs/methods/agch.md, 'Feature mode at benchmark shapes'). Labels are read here only to measure; no method uses them.

    python benchmarks/agch_target_level.py stores/mirflickr25k-proxy-dense stores/mirflickr25k-proxy-sparse
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from bitrieve.data.store import load_store
from bitrieve.methods.agch import AGCH, AGCHParams
from bitrieve.methods.base import DataInfo

SETTINGS = [("paper", {}), ("renormalised", {"renormalize_similarity": True}),
            ("renormalised + quantile 0.8", {"renormalize_similarity": True, "neutral_point": "quantile"})]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stores", nargs="+")
    ap.add_argument("--pairs-from", type=int, default=256, help="training rows sampled (their off-diagonal pairs)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    for path in args.stores:
        tr = load_store(path, splits=("train",), verify=False)["train"]
        x, t, lab = tr.inputs["image"], tr.inputs["text"], tr.labels.astype(np.float32)
        info = DataInfo({"image": x.shape[1], "text": t.shape[1]}, {"image": x.shape[1:], "text": t.shape[1:]},
                        lab.shape[1], len(lab))
        idx = np.random.default_rng(args.seed).choice(len(x), args.pairs_from, replace=False)
        off = ~np.eye(len(idx), dtype=bool)
        shares = ((lab[idx] @ lab[idx].T) > 0)[off]
        xn = x[idx] / np.linalg.norm(x[idx], axis=1, keepdims=True)
        cos = (xn @ xn.T)[off]
        print(f"{path}: image cosine mean {cos.mean():.2f} min {cos.min():.2f}, zeros {(x[idx] == 0).mean():.2f}, "
              f"pairs sharing a label {shares.mean():.2f}")
        batch = {"image": torch.as_tensor(x[idx]), "text": torch.as_tensor(t[idx])}
        for name, kw in SETTINGS:
            m = AGCH(AGCHParams(hidden=8, gcn_dims=[8], **kw), 32, info)
            if kw.get("neutral_point") == "quantile":
                m.similarity_neutral.fill_(m.fit_neutral_point(tr.inputs))
            s = m.similarity(batch).numpy()[off]
            extra = f", s0 = {float(m.similarity_neutral):.3f}" if hasattr(m, "similarity_neutral") else ""
            print(f"  {name:<28} S mean {s.mean():+.2f} min {s.min():+.2f} max {s.max():+.2f}, positive "
                  f"{100 * (s > 0).mean():.0f}%, corr with label sharing {np.corrcoef(s, shares)[0, 1]:.2f}{extra}")


if __name__ == "__main__":
    main()
