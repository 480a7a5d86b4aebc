import hashlib
import json

import pytest

from bitrieve.config import ConfigError, load_config, parse_config, set_override


def test_valid_config_resolves_method_defaults():
    cfg = parse_config({"method": "cca_itq", "bits": 16, "params": {"anchors": 100}})
    resolved = cfg.resolved()
    # every parameter of the method is written out: the one given, the others at CCA-ITQ's documented defaults
    # (RBF kernel, ridge 1.0, Gong et al.'s 50 ITQ iterations, anchors drawn with the run seed)
    assert resolved["params"] == {"kernel": True, "anchors": 100, "regularization": 1.0, "itq_iterations": 50,
                                  "anchor_seed": None}
    assert resolved["method"] == "cca_itq" and resolved["bits"] == 16
    # config_sha256 is the sha256 of the resolved config (docs/engine.md) under the key names runs were stored with
    # (eval.extra_evaluations was eval.protocols): a default given explicitly or left out is the same config; a
    # changed value is a different one
    stored = {**resolved, "eval": {("protocols" if k == "extra_evaluations" else k): v
                                   for k, v in resolved["eval"].items()}}
    assert "extra_evaluations" in resolved["eval"] and "protocols" in stored["eval"]
    digest = hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()
    assert cfg.sha256() == digest
    explicit = parse_config({"method": "cca_itq", "bits": 16, "params": {"anchors": 100, "itq_iterations": 50}})
    assert explicit.sha256() == digest
    assert parse_config({"method": "cca_itq", "bits": 16, "params": {"anchors": 101}}).sha256() != digest


def test_unknown_top_level_key_is_named():
    with pytest.raises(ConfigError, match="unknown key 'bitz'"):
        parse_config({"method": "cca_itq", "bitz": 16})


def test_unknown_method_param_is_named():
    with pytest.raises(ConfigError, match="unknown key 'params.anchorz'"):
        parse_config({"method": "cca_itq", "params": {"anchorz": 3}})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="key 'bits'"):
        parse_config({"method": "cca_itq", "bits": "many"})
    with pytest.raises(ConfigError, match="key 'eval.ks'"):
        parse_config({"method": "cca_itq", "eval": {"ks": [0]}})


def test_unknown_method_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown method 'nope'.*cca_itq"):
        parse_config({"method": "nope"})


def test_overrides_and_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("method: cca_itq\nbits: 16\nparams: {anchors: 100}\n")
    cfg = load_config(p, ["bits=64", "params.anchors=50", "eval.ks=[50,100]"])
    assert cfg.bits == 64 and cfg.method_params().anchors == 50 and cfg.eval.ks == [50, 100]
    with pytest.raises(ConfigError, match="key=value"):
        set_override({}, "bits")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_amp_off_written_bare_in_yaml_is_the_string_off():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "configs" / "dsh_cifar10.yaml"
    cfg = load_config(path, ["amp=off"])  # yaml.safe_load("off") is False
    assert cfg.amp == "off"
    assert load_config(path, ["amp=bf16"]).amp == "bf16"
