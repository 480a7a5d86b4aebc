"""Named mAP@K definitions and the tie policies (docs/evaluation.md states the rules and the sources).

A mAP@K definition is how a ranking is scored at K, named after the published evaluator it reproduces
(``dcmh``, ``deephash``, ...). ``eval.extra_evaluations`` names the ones to store beside the default ``map@K``;
results.json keeps their numbers in its ``protocols`` block (the schema-1 name).

Tie policies (how items at equal Hamming distance are ordered):
  ``stable``        ties broken by database order (a stable sort by distance). Default; reproducible.
  ``tie-averaged``  the expectation of the metric over a uniformly random order inside every group of equal
                    distances, in closed form (no sampling). Order-free: use it when the database order could be
                    correlated with relevance (e.g. a database sorted by class).

The two formulas (``map_k`` of a definition; the published evaluators they reproduce are cited per definition):
  ``top``             AP@K = (1 / N_K) * sum_{i <= K, rel_i} P@i, N_K = number of relevant items in the top K
                      (0 when N_K = 0). bitrieve's default ``map@K``; ``CalcTopMap`` of DeepHash-pytorch and
                      ``calculate_top_map`` of the released UCMFH, DJSRH (metric.py:130-156), JDSH (utils.py:161-187)
                      and DGCPN (metric.py:181-211) code.
  ``first_relevant``  AP@K = (1 / L) * sum_{j <= L} j / rank(j-th relevant item of the whole ranking),
                      L = min(K, R), R = all relevant items: the K first relevant items count wherever they are
                      ranked. ``calc_map_k`` of DCMH-pytorch (WendellGul/DCMH utils.py:12-40), copied into much later
                      cross-modal code. For K >= R it equals AP@all.
Both give AP@all for K >= N. Queries with no relevant item count as AP 0 in the mean (all evaluators above).
The published evaluators sort with ``np.argsort`` (quicksort) / ``torch.sort``, which are not stable, so their
order inside ties is implementation-defined; bitrieve reproduces their formulas under its own tie policy.

Renamed definitions (:data:`RENAMED`): ``djsrh`` was the first-relevant definition's old name, although DJSRH's
released evaluator is the ``top`` formula; configs and stored results that name it keep working and are read as
``dcmh``.
"""

from __future__ import annotations

from dataclasses import dataclass

TIES = ("stable", "tie-averaged")


@dataclass(frozen=True)
class MapDefinition:
    name: str
    map_k: str  # "top" or "first_relevant"
    source: str


MAP_DEFINITIONS: dict[str, MapDefinition] = {
    "bitrieve": MapDefinition("bitrieve", "top", "bitrieve default (docs/evaluation.md)"),
    "deephash": MapDefinition("deephash", "top", "swuxyj/DeepHash-pytorch utils/tools.py CalcTopMap"),
    "ucmfh": MapDefinition("ucmfh", "top", "calculate_top_map of XinyuXia97/UCMFH evaluate.py:116, zs-zhong/DJSRH "
                           "metric.py:130-156, KaiserLew/JDSH utils.py:161-187, Atmegal/DGCPN metric.py:181-211 "
                           "(one formula)"),
    "dcmh": MapDefinition("dcmh", "first_relevant", "calc_map_k of DCMH-pytorch, WendellGul/DCMH utils.py:12-40 "
                          "(commit db070d0)"),
    "calc_map_k": MapDefinition("calc_map_k", "first_relevant", "same as dcmh (its function name)"),
}

# old name -> current name. ``djsrh`` named the first-relevant definition after a method whose released evaluator is the
# top formula; it is accepted everywhere (configs, stored results.json blocks, report metric names) and read as dcmh.
RENAMED: dict[str, str] = {"djsrh": "dcmh"}


def canonical_name(name: str) -> str:
    """The current name of a mAP@K definition (``djsrh`` -> ``dcmh``); other names unchanged (lower-cased)."""
    key = str(name).lower()
    return RENAMED.get(key, key)


def check_tie(tie: str) -> str:
    if tie not in TIES:
        raise ValueError(f"unknown tie policy {tie!r}; expected one of {TIES}")
    return tie


def get_map_definition(name: str | None) -> MapDefinition:
    """The named mAP@K definition (None -> ``bitrieve``); ValueError listing the known names otherwise."""
    key = "bitrieve" if name is None else canonical_name(name)
    if key not in MAP_DEFINITIONS:
        raise ValueError(f"unknown mAP@K definition {name!r}; known: {sorted(MAP_DEFINITIONS)} (renamed: "
                         f"{', '.join(f'{old} -> {new}' for old, new in RENAMED.items())})")
    return MAP_DEFINITIONS[key]
