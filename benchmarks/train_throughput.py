"""Training throughput of the CIFAR-10 reproduction pack's two workloads on the current device, and the pack's
projected wall time.

    python benchmarks/train_throughput.py                       # CUDA when present, else CPU
    python benchmarks/train_throughput.py --device cpu --dsh-iters 5 --lite-iters 2 --eval-images 64   # a quick look

What is timed: the engine's own epoch loop (``engine.epochs.run_epoch``: batch assembly from the resident uint8
tensor, the method's device-side resize / mirror / mean subtraction, forward, backward, SGD step) on synthetic
32x32 uint8 images, for
- DSH: its small CNN, batch 200, the pack's settings (fp32, channels-last);
- GreedyHash: EfficientNet-Lite0 fine-tuned end to end at ``--image-size`` (224), batch 32, the pack's settings
  (bf16 autocast, channels-last);
and the evaluation's forward pass of Lite0 (``engine.evaluation.encode_split``, chunks of 2,048). Each workload
runs once plain (fp32, default layout) as the baseline measured in the same run; the ratio is pack / plain.
A warm-up of 2 iterations (cuDNN autotuning, allocator) precedes each measurement.

Projection (the pack's image counts over the measured rates): DSH 70,000 x 200 images at 12 bits + 3 x 30,000 x 200
(24/36/48 bits from the 12-bit model) = 32,000,000; GreedyHash 4 x 50 epochs x 5,000 = 1,000,000 training images +
4 x 60,000 encoded; DSH's evaluation (4 x 10,000 tiny images) is left out. Store building and Python start-up are
not included.

Last line: ``dsh_img_s=... lite0_train_img_s=... lite0_eval_img_s=... projected_pack_s=... device=...``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DSH_IMAGES = 70_000 * 200 + 3 * 30_000 * 200
LITE_TRAIN_IMAGES = 4 * 50 * 5_000
LITE_EVAL_IMAGES = 4 * 60_000


def _synthetic_split(n: int):
    from bitrieve.data.types import Split

    rng = np.random.default_rng(0)
    y = np.arange(n) % 10
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    return Split({"image": x}, np.eye(10, dtype=np.uint8)[y], np.arange(n, dtype=np.int64))


def train_rate(config: str, overrides: list[str], iters: int, device: str, amp: str, channels_last: bool) -> float:
    """Images per second of ``iters`` training iterations of ``config`` through ``run_epoch`` (after 2 warm-up)."""
    import dataclasses

    import torch

    from bitrieve.config import load_config
    from bitrieve.data.types import CrossModalData
    from bitrieve.engine import distributed as ddp
    from bitrieve.devices import autocast_factory, resolve_device
    from bitrieve.engine.epochs import TrainInputs, run_epoch
    from bitrieve.engine.loading import build_method
    from bitrieve.engine.optimizers import make_optimizer

    cfg = load_config(ROOT / "configs" / config, overrides + [f"device={device}"])
    dev = resolve_device(cfg.device)
    probe = _synthetic_split(8)
    method = build_method(cfg, CrossModalData({"train": probe, "query": probe, "retrieval": probe}, {"name": "x"}))
    stage = method.stages()[0]
    split = _synthetic_split(stage.batch_size * (iters + 2))
    method.prepare(split)
    method.to(dev)
    if channels_last:
        method.to(memory_format=torch.channels_last)
    opt, bases = make_optimizer(method, stage)
    inputs = TrainInputs(split, method, dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=False)
    autocast = autocast_factory(dev, amp)

    def epoch(rows: int) -> None:
        run_epoch(method, dataclasses.replace(stage, max_rows=rows, drop_last=True), 0, 0, stage.loss, opt, bases,
                  inputs, scaler, autocast, 0, ddp.DistInfo(), False)  # run_epoch reads the losses back: synced

    epoch(2 * stage.batch_size)  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    epoch(iters * stage.batch_size)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return iters * stage.batch_size / (time.perf_counter() - t)


def encode_rate(image_size: int, n: int, device: str, amp: str, channels_last: bool) -> float:
    """Images per second of the evaluation's Lite0 forward pass (``encode_split``) over ``n`` images."""
    import torch

    from bitrieve.config import load_config
    from bitrieve.data.types import CrossModalData
    from bitrieve.engine.evaluation import encode_split
    from bitrieve.devices import autocast_factory, resolve_device
    from bitrieve.engine.loading import build_method

    cfg = load_config(ROOT / "configs" / "greedyhash_cifar10_lite0.yaml",
                      [f"params.image_size={image_size}", f"device={device}"])
    dev = resolve_device(cfg.device)
    split = _synthetic_split(n)
    method = build_method(cfg, CrossModalData({"train": split, "query": split, "retrieval": split}, {"name": "x"}))
    method.to(dev)
    if channels_last:
        method.to(memory_format=torch.channels_last)
    autocast = autocast_factory(dev, amp)
    encode_split(method, split.subset(np.arange(min(n, 8))), "image", dev, autocast=autocast)  # warm-up
    t = time.perf_counter()
    encode_split(method, split, "image", dev, autocast=autocast)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dsh-iters", type=int, default=200, help="timed DSH iterations (batch 200)")
    ap.add_argument("--lite-iters", type=int, default=50, help="timed Lite0 iterations (batch 32)")
    ap.add_argument("--eval-images", type=int, default=4096, help="images encoded by the timed Lite0 forward pass")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--no-baseline", action="store_true", help="skip the plain fp32 / default-layout baseline")
    args = ap.parse_args()

    import torch

    from bitrieve.devices import resolve_device

    dev = resolve_device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    lite = [f"params.image_size={args.image_size}"]
    rows = {}
    for label, amp_dsh, amp_lite, cl in [("pack", "off", "bf16", True)] + \
            ([] if args.no_baseline else [("plain", "off", "off", False)]):
        rows[label] = (train_rate("dsh_cifar10.yaml", [], args.dsh_iters, args.device, amp_dsh, cl),
                       train_rate("greedyhash_cifar10_lite0.yaml", lite, args.lite_iters, args.device, amp_lite, cl),
                       encode_rate(args.image_size, args.eval_images, args.device, amp_lite, cl))
        d, lt, le = rows[label]
        print(f"{label:>5} ({'DSH fp32' if amp_dsh == 'off' else 'DSH bf16'}, Lite0 {amp_lite}, "
              f"{'channels-last' if cl else 'default layout'}): DSH {d:,.0f} img/s | Lite0 {args.image_size} px "
              f"train {lt:,.1f} img/s | Lite0 encode {le:,.1f} img/s")
    d, lt, le = rows["pack"]
    parts = {"DSH": DSH_IMAGES / d, "GreedyHash train": LITE_TRAIN_IMAGES / lt,
             "GreedyHash eval": LITE_EVAL_IMAGES / le}
    total = sum(parts.values())
    print("projected pack wall time: " + ", ".join(f"{k} {v:,.0f} s" for k, v in parts.items())
          + f"; total {total:,.0f} s = {total / 3600:.2f} h")
    if "plain" in rows:
        print("pack / plain: " + ", ".join(f"{k} {a / b:.2f}x" for k, a, b in
                                          zip(("DSH", "Lite0 train", "Lite0 encode"), rows["pack"], rows["plain"])))
    print(f"dsh_img_s={d:.1f} lite0_train_img_s={lt:.2f} lite0_eval_img_s={le:.2f} projected_pack_s={total:.0f} "
          f"device={name.replace(' ', '_')}")


if __name__ == "__main__":
    main()
