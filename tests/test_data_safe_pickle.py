"""Restricted unpickler: numpy arrays and builtins round-trip under every protocol; anything else is refused."""

import pickle

import numpy as np
import pytest

from bitrieve.data.safe_pickle import UnsafePickleError, safe_load, safe_loads


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_arrays_and_builtins_round_trip(protocol):
    d = {"image": np.random.default_rng(0).random((3, 4)).astype(np.float32), "label": np.eye(3, dtype=np.int64),
         "s": np.float64(2.5), "names": np.array(["a", "bc"]), b"raw": [1, 2.0, "x", (True, None)], "by": b"\x00\xff"}
    back = safe_loads(pickle.dumps(d, protocol=protocol))
    np.testing.assert_array_equal(back["image"], d["image"])
    assert back["image"].dtype == np.float32 and back["s"] == 2.5 and back[b"raw"] == d[b"raw"]
    assert back["by"] == b"\x00\xff" and back["names"].tolist() == ["a", "bc"]


class _Custom:
    pass


@pytest.mark.parametrize("obj,name", [(eval, "builtins.eval"), (_Custom(), "_Custom"),
                                      (__import__("collections").OrderedDict(a=1), "collections.OrderedDict")])
def test_other_globals_are_refused_by_name(obj, name, tmp_path):
    p = tmp_path / "x.pkl"
    p.write_bytes(pickle.dumps(obj))
    with pytest.raises(UnsafePickleError, match=rf"x\.pkl: refused to unpickle global '.*{name}'"):
        safe_load(p)
