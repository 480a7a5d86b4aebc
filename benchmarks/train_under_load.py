"""Training throughput beside one competing CPU-bound process, against the same training alone, in the same run.

    python benchmarks/train_under_load.py                     # threads 1 and 2, 3 alternating rounds
    python benchmarks/train_under_load.py --baseline-src ../main/src   # also the same protocol on another checkout

What is trained: AGCH at the demo widths on the embedded Wiki data (configs/agch_wiki_demo.yaml, 32 bits), through
the engine's own pieces (``build_method``, ``make_optimizer``, ``run_epoch``), AFTER one evaluation in the same
process - the situation of the issue (the demo trains AGCH after CCA-ITQ was evaluated): numba's kernels have run
before the training starts. Each measurement is a fresh child process (``OMP_NUM_THREADS`` = the thread count,
``bitrieve.threads.configure`` applied) that trains for ``--seconds`` after one warm-up epoch and prints its
iterations per second. The competitor is ``python -c "while True: pass"`` (one CPU-bound thread), started before
the child and killed after it; child and competitor each run in their own session (Linux autogroup scheduling
shares CPU between sessions first, so this is what a job of another user or terminal does). Rounds alternate alone / loaded so slow drifts of a shared machine hit both; the
ratio is the median loaded rate over the median lone rate. The load average is printed before and after (other
users of the machine change the absolute numbers, less so the ratio).

Last line: ``ratio_t1=<loaded/alone, 1 thread> ratio_t2=<same, 2 threads> its_t1=<alone it/s> its_t2=<...>``
(with ``--baseline-src``, the baseline's ratios follow as ``baseline_ratio_t1=... baseline_ratio_t2=...``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "agch_wiki_demo.yaml"


def child(threads: int, seconds: float) -> None:
    """Evaluate once, then train AGCH for ``seconds``; print {"its": iterations/s, ...} as JSON."""
    try:  # bitrieve's one thread decision, before torch is imported (as `bitrieve train` does); an older checkout:
        from bitrieve.threads import configure  # torch reads OMP_NUM_THREADS itself

        configure(threads)
    except ImportError:
        pass
    import torch
    from bitrieve.config import load_config
    from bitrieve.data import load_data
    from bitrieve.engine import distributed as ddp
    from bitrieve.engine.evaluation import evaluate_method
    from bitrieve.devices import autocast_factory
    from bitrieve.engine.epochs import TrainInputs, run_epoch
    from bitrieve.engine.loading import build_method
    from bitrieve.engine.optimizers import make_optimizer

    cfg = load_config(CONFIG, ["bits=32", "device=cpu"])
    data = load_data("wiki")
    method = build_method(cfg, data)
    method.prepare(data["train"])
    dev = torch.device("cpu")
    autocast = autocast_factory(dev, "off")
    evaluate_method(method, data, cfg, dev, autocast)  # numba's kernels run before training, as in the demo
    stage = method.stages()[0]
    opt, bases = make_optimizer(method, stage)
    inputs = TrainInputs(data["train"], method, dev)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    info = ddp.DistInfo()
    batches_per_epoch = -(-inputs.n // stage.batch_size)
    run_epoch(method, stage, 0, 0, stage.loss, opt, bases, inputs, scaler, autocast, 0, info, False)  # warm-up
    t0, epochs = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        epochs += 1
        run_epoch(method, stage, 0, epochs, stage.loss, opt, bases, inputs, scaler, autocast, 0, info, False)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"its": epochs * batches_per_epoch / elapsed, "torch_threads": torch.get_num_threads()}))


def measure(threads: int, seconds: float, loaded: bool, src: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(src))
    env.pop("NUMBA_NUM_THREADS", None)
    # each in its own session: with the kernel's autogroup scheduling, processes of one session share one CPU
    # share, so the competitor must not come out of the training's own share (another user's job would not)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) if loaded else None
    try:
        if hog is not None:
            time.sleep(0.5)
        out = subprocess.run([sys.executable, __file__, "--child", "--threads", str(threads), "--seconds",
                              str(seconds)], env=env, capture_output=True, text=True, check=False,
                             start_new_session=True)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    if out.returncode != 0:
        raise SystemExit(f"child failed ({src}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def protocol(src: Path, threads_list: list[int], rounds: int, seconds: float, label: str) -> dict[int, float]:
    ratios = {}
    for t in threads_list:
        alone, loaded = [], []
        for r in range(rounds):
            alone.append(measure(t, seconds, False, src)["its"])
            loaded.append(measure(t, seconds, True, src)["its"])
            print(f"  [{label}] threads {t} round {r + 1}: alone {alone[-1]:.1f} it/s, beside one CPU-bound "
                  f"process {loaded[-1]:.1f} it/s", flush=True)
        a, b = statistics.median(alone), statistics.median(loaded)
        ratios[t] = (b / a, a, b)
        print(f"[{label}] threads {t}: median alone {a:.1f} it/s, loaded {b:.1f} it/s, ratio {b / a:.3f}", flush=True)
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating alone/loaded rounds per thread count")
    ap.add_argument("--seconds", type=float, default=6.0, help="timed training per measurement")
    ap.add_argument("--baseline-src", default=None, help="also measure another checkout's src/ (e.g. ../main/src)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(int(args.threads), args.seconds)
        return
    threads_list = [int(t) for t in args.threads.split(",")]
    print(f"cpus {os.cpu_count()}, load average before {os.getloadavg()[0]:.2f}", flush=True)
    ours = protocol(ROOT / "src", threads_list, args.rounds, args.seconds, "this checkout")
    base = protocol(Path(args.baseline_src).resolve(), threads_list, args.rounds, args.seconds, "baseline") \
        if args.baseline_src else {}
    print(f"load average after {os.getloadavg()[0]:.2f}", flush=True)
    line = " ".join(f"ratio_t{t}={r[0]:.3f}" for t, r in ours.items())
    line += " " + " ".join(f"its_t{t}={r[1]:.1f}" for t, r in ours.items())
    if base:
        line += " " + " ".join(f"baseline_ratio_t{t}={r[0]:.3f}" for t, r in base.items())
    print(line)


if __name__ == "__main__":
    main()
