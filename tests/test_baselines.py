"""DJSRH / JDSH / DGCPN: released settings and loss definitions (the golden tests - every parameter trains, bit
length = output width - run for every method in tests/test_method_contract.py).

The losses and targets are checked against the released code in tests/test_parity.py."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bitrieve.data.types import Split
from bitrieve.methods import get_method
from bitrieve.methods.base import DataInfo

DIMS = (12, 6)
N_TRAIN = 40


def _info():
    return DataInfo(feature_dims={"image": DIMS[0], "text": DIMS[1]},
                    input_shapes={"image": (DIMS[0],), "text": (DIMS[1],)}, num_labels=3, num_train=N_TRAIN)


def _train_split(seed=0):
    rng = np.random.default_rng(seed)
    return Split({"image": np.abs(rng.normal(size=(N_TRAIN, DIMS[0]))).astype(np.float32),
                  "text": np.abs(rng.normal(size=(N_TRAIN, DIMS[1]))).astype(np.float32)},
                 np.eye(3, dtype=np.uint8)[rng.integers(0, 3, N_TRAIN)], np.arange(N_TRAIN))


def _batch(train, rows):
    rows = torch.as_tensor(rows)
    return {"image": torch.as_tensor(train.inputs["image"])[rows], "text": torch.as_tensor(train.inputs["text"])[rows],
            "index": rows}


def _build(name, bits=16, **kw):
    cls = get_method(name)
    torch.manual_seed(0)
    kw.setdefault("hidden", 32)
    if name == "dgcpn":
        kw.setdefault("knn_number", 30)
        kw.setdefault("scale", 8.0)
    m = cls(cls.Params(**kw), bits, _info())
    m.prepare(_train_split())
    return m


def test_stage_follows_released_settings():
    (s,) = _build("djsrh").stages()
    assert s.optimizer == "sgd" and s.optimizer_kwargs == {"momentum": 0.9, "weight_decay": 5e-4}
    assert s.batch_size == 32 and s.drop_last and s.epochs == 80
    g = _build("djsrh").param_groups()
    assert (g["image"]["lr"], g["text"]["lr"]) == (1e-3, 1e-2)
    assert _build("jdsh").stages()[0].epochs == 300 and _build("dgcpn").param_groups()["image"]["lr"] == 0.005


def test_djsrh_alpha_schedule_and_loss_definition():
    m = _build("djsrh").train()
    assert m.alpha() == 1.0
    train = _train_split()
    per_epoch = N_TRAIN // 32  # = 1 step per epoch here
    for _ in range(3 * per_epoch):
        m.stages()[0].loss(_batch(train, range(8)))
    assert m.alpha() == pytest.approx(math.sqrt(4.0))  # epoch 3 -> sqrt(3 + 1)
    # loss = lambda1 mse(BiBi, S) + mse(BiBt, S) + lambda2 mse(BtBt, S), B = normalised tanh(alpha h)
    b = _batch(train, range(8))
    ci, ct = m.codes("image", b["image"]), m.codes("text", b["text"])  # before the call advances the step count
    out = m.stages()[0].loss(b)
    from bitrieve.parts.neighbourhood import djsrh_joint_similarity

    s = djsrh_joint_similarity(b["image"], b["text"], 0.9, 0.4, 1.5)
    bi, bt = F.normalize(ci), F.normalize(ct)
    ref = 0.1 * F.mse_loss(bi @ bi.t(), s) + F.mse_loss(bi @ bt.t(), s) + 0.1 * F.mse_loss(bt @ bt.t(), s)
    assert out["loss"].item() == pytest.approx(ref.item(), rel=1e-5)


def test_dgcpn_steps_update_the_released_groups():
    (stage,) = _build("dgcpn").stages()
    assert [(s.name, s.groups) for s in stage.steps] == [("joint", ("image", "text")), ("image", ("image",)),
                                                         ("text", ("text",))]
    assert stage.loss is None and not stage.drop_last and stage.batch_size == 32
    (summed,) = _build("dgcpn", optimisation="summed").stages()
    assert summed.loss is not None and not summed.steps


def test_input_standardisation_uses_training_statistics_only_when_asked():
    train = _train_split()
    raw = _build("djsrh")
    assert torch.all(raw.image_mean == 0) and torch.all(raw.image_std == 1)  # default "none": identity
    m = _build("djsrh", input_norm="standardize")
    x = torch.as_tensor(train.inputs["image"])
    assert torch.allclose(m.image_mean, x.mean(0)) and torch.allclose(m.image_std, x.std(0))
    # the code of x equals the code of the standardised x through an un-normalised copy
    m.eval()
    plain = _build("djsrh").eval()
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith(("image_", "text_"))},
                          strict=False)
    assert torch.allclose(m.encode("image", x), plain.encode("image", (x - x.mean(0)) / x.std(0)), atol=1e-6)
