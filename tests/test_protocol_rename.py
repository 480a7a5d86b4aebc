"""The first-relevant mAP@K definition is named after its source, DCMH-pytorch's ``calc_map_k`` (``dcmh``); its old
name ``djsrh`` (DJSRH's released evaluator is the top-K formula) keeps working everywhere. The config key
``eval.protocols`` is now ``eval.extra_evaluations``; the old key loads as the new one with the same config hash."""

from pathlib import Path

import pytest
import yaml

from bitrieve.config import ConfigError, dump_config, load_config, parse_config
from bitrieve.engine.evaluation import split_extra_evaluations
from bitrieve.eval.map_definitions import MAP_DEFINITIONS, get_map_definition
from bitrieve.report.tables import metric_name


class _Method:
    name = "stub"
    extra_evaluations = ("pair-input",)


def test_old_name_maps_to_dcmh_and_the_sources_are_right():
    assert get_map_definition("djsrh") is MAP_DEFINITIONS["dcmh"] is not None
    assert get_map_definition("DJSRH").map_k == "first_relevant"
    assert "WendellGul/DCMH utils.py:12-40" in MAP_DEFINITIONS["dcmh"].source
    # DJSRH's own released evaluator (metric.py:130-156 calculate_top_map) is the top-K formula
    assert MAP_DEFINITIONS["ucmfh"].map_k == "top" and "zs-zhong/DJSRH metric.py:130-156" in MAP_DEFINITIONS["ucmfh"].source
    assert split_extra_evaluations(_Method(), ["djsrh", "deephash", "pair-input", "unseen-database"]) == \
        (["dcmh", "deephash"], ["pair-input", "unseen-database"])
    assert metric_name("djsrh:map@50") == metric_name("dcmh:map@50") == "mAP@50 (dcmh protocol, see docs/evaluation.md)"


def test_unknown_name_error_lists_the_rename():
    with pytest.raises(ValueError, match=r"renamed: \['djsrh'\]"):
        split_extra_evaluations(_Method(), ["djsr"])
    with pytest.raises(ValueError, match="renamed: djsrh -> dcmh"):
        get_map_definition("djsr")


OLD = {"method": "ucmfh", "bits": 32, "seed": 1,
       "eval": {"ks": [50], "protocols": ["ucmfh-pair-input", "pair-input", "unseen-database"]}}


def test_old_config_key_resolves_to_the_new_one_with_the_same_hash():
    new = {**OLD, "eval": {"ks": [50], "extra_evaluations": OLD["eval"]["protocols"]}}
    a, b = parse_config(OLD), parse_config(new)
    assert a.resolved() == b.resolved() and a.eval.extra_evaluations == ["ucmfh-pair-input", "pair-input",
                                                                          "unseen-database"]
    assert "protocols" not in a.resolved()["eval"]
    # the hash is over the key names runs were stored with: the sha256 of the old resolved dict, typed here
    import hashlib
    import json

    d = b.resolved()
    d["eval"] = {("protocols" if k == "extra_evaluations" else k): v for k, v in d["eval"].items()}
    assert b.sha256() == a.sha256() == hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()
    again = parse_config(yaml.safe_load(dump_config(a)))  # written with the new key, read back the same
    assert again.resolved() == a.resolved()
    with pytest.raises(ConfigError, match="'eval.protocols' is the old name of 'eval.extra_evaluations'"):
        parse_config({**OLD, "eval": {"protocols": [], "extra_evaluations": []}})


RESULTS = Path(__file__).resolve().parent.parent / "results"


# stored runs (written with eval.protocols) whose results.json records the hash of their config as it loads today
SAME_HASH = ["ucmfh-wiki/b32-s1", "ucmfh_variant-wiki/b16-s0", "ucmfh-wiki-balanced/b64-s0", "djsrh-wiki/b16-s0",
             "cca_itq-wiki/b16-s0"]


def test_stored_run_configs_load_and_keep_their_hash():
    """Every committed results/*/b*-s*/config.yaml loads; runs whose hash matched before the key was renamed still
    match (so sweeps keep finding them finished)."""
    import json

    stored = sorted(RESULTS.glob("*/b*-s*/config.yaml"))
    if not stored:
        pytest.skip("no stored runs in results/")
    for path in stored:
        load_config(path)
    for run in SAME_HASH:
        assert "protocols" in yaml.safe_load((RESULTS / run / "config.yaml").read_text())["eval"]
        cfg = load_config(RESULTS / run / "config.yaml")
        assert cfg.sha256() == json.loads((RESULTS / run / "results.json").read_text())["config_sha256"], run
