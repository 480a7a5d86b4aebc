"""The first-relevant mAP@K protocol is named after its source, DCMH-pytorch's ``calc_map_k`` (``dcmh``); its old
name ``djsrh`` (DJSRH's released evaluator is the top-K formula) keeps working everywhere."""

import pytest

from bitrieve.engine.evaluation import split_protocols
from bitrieve.eval.protocols import PROTOCOLS, get_protocol
from bitrieve.report.tables import metric_name


class _Method:
    name = "stub"
    method_protocols = {"pair-input": "..."}


def test_old_name_maps_to_dcmh_and_the_sources_are_right():
    assert get_protocol("djsrh") is PROTOCOLS["dcmh"] is not None
    assert get_protocol("DJSRH").map_k == "first_relevant"
    assert "WendellGul/DCMH utils.py:12-40" in PROTOCOLS["dcmh"].source
    # DJSRH's own released evaluator (metric.py:130-156 calculate_top_map) is the top-K formula
    assert PROTOCOLS["ucmfh"].map_k == "top" and "zs-zhong/DJSRH metric.py:130-156" in PROTOCOLS["ucmfh"].source
    assert split_protocols(_Method(), ["djsrh", "deephash", "pair-input"]) == (["dcmh", "deephash"], ["pair-input"])
    assert metric_name("djsrh:map@50") == metric_name("dcmh:map@50") == "mAP@50 (dcmh protocol, see docs/evaluation.md)"


def test_unknown_protocol_error_lists_the_rename():
    with pytest.raises(ValueError, match=r"renamed: \['djsrh'\]"):
        split_protocols(_Method(), ["djsr"])
    with pytest.raises(ValueError, match="renamed: djsrh -> dcmh"):
        get_protocol("djsr")
