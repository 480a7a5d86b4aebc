"""Evaluation core: packed binary codes, stable Hamming ranking, retrieval metrics (docs/evaluation.md).

Public API: ``Codes``, ``hamming_rank``, ``map_at_k``, ``evaluate_retrieval``, ``ranking_summary``,
``recall_at_k``, ``cross_modal_recall``, ``MAP_DEFINITIONS``, ``TIES``.
"""

from ._recall import cross_modal_recall, recall_at_k
from .hamming import Codes, hamming_rank
from .metrics import TASKS, evaluate_retrieval, map_at_k, pack_labels, ranking_summary
from .map_definitions import MAP_DEFINITIONS, TIES, get_map_definition

__all__ = [
    "Codes", "hamming_rank", "map_at_k", "evaluate_retrieval", "ranking_summary", "pack_labels", "recall_at_k",
    "cross_modal_recall", "MAP_DEFINITIONS", "TIES", "TASKS", "get_map_definition",
]
