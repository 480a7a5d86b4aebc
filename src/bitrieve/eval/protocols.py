"""Named evaluation protocols and tie policies (docs/evaluation.md states the rules and the sources).

Tie policies (how items at equal Hamming distance are ordered):
  ``stable``        ties broken by database order (a stable sort by distance). Default; reproducible.
  ``tie-averaged``  the expectation of the metric over a uniformly random order inside every group of equal
                    distances, in closed form (no sampling). Order-free: use it when the database order could be
                    correlated with relevance (e.g. a database sorted by class).

mAP@K definitions (``map_k`` of a protocol):
  ``top``             AP@K = (1 / N_K) * sum_{i <= K, rel_i} P@i, N_K = number of relevant items in the top K
                      (0 when N_K = 0). bitrieve's default ``map@K``; the evaluator of DeepHash-pytorch
                      (``CalcTopMap``) and of DJSRH / UCMFH (``calculate_top_map``).
  ``first_relevant``  AP@K = (1 / L) * sum_{j <= L} j / rank(j-th relevant item of the whole ranking),
                      L = min(K, R), R = all relevant items: the K first relevant items count wherever they are
                      ranked. ``calc_map_k`` of the DCMH-pytorch lineage (used by DJSRH follow-ups: JDSH, DGCPN,
                      MITH ...). For K >= R it equals AP@all.
Both give AP@all for K >= N. Queries with no relevant item count as AP 0 in the mean (all evaluators above).
The published evaluators sort with ``np.argsort`` (quicksort) / ``torch.sort``, which are not stable, so their
order inside ties is implementation-defined; bitrieve reproduces their formulas under its own tie policy.
"""

from __future__ import annotations

from dataclasses import dataclass

TIES = ("stable", "tie-averaged")


@dataclass(frozen=True)
class Protocol:
    name: str
    map_k: str  # "top" or "first_relevant"
    source: str


PROTOCOLS: dict[str, Protocol] = {
    "bitrieve": Protocol("bitrieve", "top", "bitrieve default (docs/evaluation.md)"),
    "deephash": Protocol("deephash", "top", "swuxyj/DeepHash-pytorch utils/tools.py CalcTopMap"),
    "ucmfh": Protocol("ucmfh", "top", "XinyuXia97/UCMFH and zs-zhong/DJSRH metric.py calculate_top_map"),
    "djsrh": Protocol("djsrh", "first_relevant",
                      "calc_map_k (DCMH-pytorch lineage, used in DJSRH-family code, e.g. "
                      "DarrenZZhang/MM23-MITH utils/calc_utils.py)"),
    "calc_map_k": Protocol("calc_map_k", "first_relevant", "same as djsrh"),
}


def check_tie(tie: str) -> str:
    if tie not in TIES:
        raise ValueError(f"unknown tie policy {tie!r}; expected one of {TIES}")
    return tie


def get_protocol(name: str | None) -> Protocol:
    """The named protocol (None -> ``bitrieve``); ValueError listing the known names otherwise."""
    key = "bitrieve" if name is None else str(name).lower()
    if key not in PROTOCOLS:
        raise ValueError(f"unknown evaluation protocol {name!r}; known: {sorted(PROTOCOLS)}")
    return PROTOCOLS[key]
