"""Several optimiser updates per batch (methods/base.py ``Step``, engine/steps.py) against a hand-written loop with
one SGD optimizer per group, as DGCPN's released ``train_div.py`` has (``opt_I`` and ``opt_T``)."""

from __future__ import annotations

import contextlib

import pytest
import torch

from bitrieve.config import parse_config
from bitrieve.engine import distributed as ddp
from bitrieve.engine import train_run
from bitrieve.engine.steps import update_batch
from bitrieve.methods import REGISTRY
from bitrieve.methods.base import HashMethod, Params, Stage, Step


class TwoNets(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(4, 3)
        self.b = torch.nn.Linear(4, 3)


def _losses(net: TwoNets, x: torch.Tensor, cache: dict):
    """A joint loss on both nets, then a on its own against sign(b) (b's output cached for the third), then b."""

    def joint(batch):
        return {"loss": ((net.a(batch["x"]) - net.b(batch["x"])) ** 2).mean() + net.a(batch["x"]).pow(2).mean()}

    def only_a(batch):
        ya, yb = net.a(batch["x"]), net.b(batch["x"])
        cache["sign_a"], cache["yb"] = ya.sign().detach(), yb
        return {"loss": ((ya - yb.sign().detach()) ** 2).mean(), "extra": ya.abs().mean()}

    def only_b(batch):
        return {"loss": ((cache.pop("sign_a") - cache.pop("yb")) ** 2).mean()}

    return joint, only_a, only_b


def test_steps_equal_one_optimizer_per_group():
    x = torch.randn(5, 4)
    # reference: the released structure - two optimizers, three backward passes, each optimizer stepped when named
    ref = TwoNets()
    opt_a = torch.optim.SGD(ref.a.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    opt_b = torch.optim.SGD(ref.b.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(3):
        loss = ((ref.a(x) - ref.b(x)) ** 2).mean() + ref.a(x).pow(2).mean()
        opt_a.zero_grad()
        opt_b.zero_grad()
        loss.backward()
        opt_a.step()
        opt_b.step()
        ya, yb = ref.a(x), ref.b(x)
        loss_a = ((ya - yb.sign().detach()) ** 2).mean()
        opt_a.zero_grad()
        loss_a.backward(retain_graph=True)
        opt_a.step()
        loss_b = ((ya.sign().detach() - yb) ** 2).mean()
        opt_b.zero_grad()
        loss_b.backward()
        opt_b.step()

    net, cache = TwoNets(), {}
    joint, only_a, only_b = _losses(net, x, cache)
    stage = Stage("main", 1, None, ["a", "b"], steps=(Step("joint", joint, ("a", "b")), Step("a", only_a, ("a",)),
                                                        Step("b", only_b, ("b",))))
    opt = torch.optim.SGD([{"params": list(net.a.parameters()), "lr": 0.1, "name": "a"},
                           {"params": list(net.b.parameters()), "lr": 0.05, "name": "b"}],
                          momentum=0.9, weight_decay=5e-4)
    params = [p for g in opt.param_groups for p in g["params"]]
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for i in range(3):
        out = update_batch(stage, None, {"x": x}, opt, params, scaler, contextlib.nullcontext, ddp.DistInfo(),
                           f"batch {i + 1}")
    assert set(out) == {"loss", "joint/loss", "a/loss", "a/extra", "b/loss"}
    assert out["loss"].item() == pytest.approx((out["joint/loss"] + out["a/loss"] + out["b/loss"]).item())
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-7), name
    # the summed single update is a different algorithm: it would not reproduce these weights
    summed = TwoNets()
    assert not torch.allclose(summed.a.weight, net.a.weight)


def test_a_step_leaves_other_groups_untouched_even_if_they_got_gradients():
    net = TwoNets()
    b_before = [p.detach().clone() for p in net.b.parameters()]
    stage = Stage("main", 1, None, ["a", "b"],
                  steps=(Step("a", lambda batch: {"loss": (net.a(batch["x"]) + net.b(batch["x"])).sum()}, ("a",)),))
    opt = torch.optim.SGD([{"params": list(net.a.parameters()), "lr": 0.1, "name": "a"},
                           {"params": list(net.b.parameters()), "lr": 0.1, "name": "b"}], momentum=0.9,
                          weight_decay=0.1)
    params = [p for g in opt.param_groups for p in g["params"]]
    update_batch(stage, None, {"x": torch.randn(2, 4)}, opt, params, torch.amp.GradScaler("cpu", enabled=False),
                 contextlib.nullcontext, ddp.DistInfo(), "batch 1")
    assert all(torch.equal(p, q) for p, q in zip(net.b.parameters(), b_before))
    assert all(p not in opt.state or not opt.state[p] for p in net.b.parameters())  # no momentum buffer either


def test_stage_validation_names_the_problem():
    step = Step("s", lambda b: {"loss": torch.zeros(())}, ("a",))
    with pytest.raises(ValueError, match="either loss or steps"):
        Stage("x", 1, lambda b: {}, ["a"], steps=(step,))
    with pytest.raises(ValueError, match="needs a loss or a sequence of steps"):
        Stage("x", 1, None, ["a"])
    with pytest.raises(ValueError, match="step 'bad' must update some of the stage's groups"):
        Stage("x", 1, None, ["a"], steps=(Step("bad", step.loss, ("c",)),))
    with pytest.raises(ValueError, match="distinct"):
        Stage("x", 1, None, ["a"], steps=(step, step))


def test_non_finite_step_loss_names_the_step():
    stage = Stage("main", 1, None, ["a"], steps=(Step("joint", lambda b: {"loss": torch.tensor(float("nan"))},
                                                      ("a",)),))
    net = TwoNets()
    opt = torch.optim.SGD([{"params": list(net.a.parameters()), "lr": 0.1, "name": "a"}])
    with pytest.raises(FloatingPointError, match="stage 'main' epoch 1 batch 2 step 'joint': loss is nan"):
        update_batch(stage, None, {}, opt, [], torch.amp.GradScaler("cpu", enabled=False), contextlib.nullcontext,
                     ddp.DistInfo(), "epoch 1 batch 2")


class SteppedParams(Params):
    epochs: int = 2


class Stepped(HashMethod):
    """Two linear heads trained by a two-step stage through the engine (logging and checkpoint round trip)."""

    Params = SteppedParams

    def __init__(self, params, bits, info):
        super().__init__(params, bits, info)
        self.heads = torch.nn.ModuleDict({m: torch.nn.Linear(info.feature_dims[m], bits) for m in self.modalities})

    def encode(self, modality, x):
        return torch.tanh(self.heads[modality](x.reshape(x.shape[0], -1).float()))

    def param_groups(self):
        return {m: {"params": list(self.heads[m].parameters()), "lr": 0.01} for m in self.modalities}

    def _align(self, fixed: str):
        def loss(batch):
            h = {m: self.encode(m, batch[m]) for m in self.modalities}
            other = "text" if fixed == "image" else "image"
            return {"loss": ((h[other] - h[fixed].sign().detach()) ** 2).mean()}
        return loss

    def stages(self):
        return [Stage("main", self.params.epochs, None, ["image", "text"], batch_size=256, optimizer="sgd",
                      optimizer_kwargs={"momentum": 0.9}, max_rows=512,
                      steps=(Step("text", self._align("image"), ("text",)),
                             Step("image", self._align("text"), ("image",))))]


def test_stepped_stage_through_the_engine_logs_every_step(tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "stepped", Stepped)
    cfg = parse_config({"method": "stepped", "bits": 8, "seed": 0, "tracking": "none",
                        "eval": {"query_limit": 40, "ks": [10]}})
    res = train_run(cfg, tmp_path / "run", progress=False)
    last = res["history"][-1]
    assert {"loss", "text/loss", "image/loss"} <= set(last)
    assert last["loss"] == pytest.approx(last["text/loss"] + last["image/loss"], rel=1e-6)
