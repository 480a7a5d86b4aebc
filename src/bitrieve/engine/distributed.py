"""Multi-process training (``torchrun --nproc_per_node=N -m bitrieve train CONFIG``): the same training as one process.

What changes against one process:
- the process group is initialised from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``MASTER_ADDR``/``MASTER_PORT``); backend NCCL on CUDA, gloo on CPU; each rank uses ``cuda:LOCAL_RANK`` when on CUDA;
- every rank draws the SAME global batch order (same seeded generator) and receives the WHOLE global batch; the
  stage loss is computed on it on every rank, so it is the one-process loss (batch-wide targets, per-item random
  draws from the same seeded generator). The per-row networks are split across ranks by the method through
  :func:`bitrieve.parallel.rowwise` (each rank one contiguous shard, outputs all-gathered with gradient); that module
  explains why the gradients are the one-process gradients;
- after ``backward`` the gradients are averaged over ranks with one all-reduce over a flat buffer (what
  ``DistributedDataParallel`` does; its module wrapper cannot be used because a ``Stage.loss`` closure calls the
  method's sub-modules directly rather than through one ``forward``);
- only rank 0 writes the run directory, logs, evaluates and checkpoints; the others wait for it
  (:func:`barrier`, which fails when rank 0 stops responding instead of hanging).

Faults end every process within ``BITRIEVE_DIST_TIMEOUT`` seconds (default 60) with one line naming the cause: a
world size larger than the ranks started, an unreachable master, a rank that dies. Collectives (gradient all-reduce,
all-gather) use the same timeout; rank 0's solitary work (evaluation, checkpoints) is waited for with a heartbeat,
not a timeout, so a long evaluation is not a fault.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from bitrieve.errors import BitrieveError

TIMEOUT_ENV = "BITRIEVE_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 60.0  # seconds
_HEARTBEAT = "bitrieve/rank0-heartbeat"
_meetings = 0


class DistributedError(BitrieveError):
    """A multi-process fault (start-up, a lost rank, a timeout), reported in one line."""


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def timeout_seconds() -> float:
    """``BITRIEVE_DIST_TIMEOUT`` (seconds, > 0), default 60."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DistributedError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds > 0")
    return value


def _env_int(name: str) -> int:
    raw = os.environ.get(name)
    try:
        return int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DistributedError(f"multi-process start: environment variable {name}={raw!r}, expected an integer "
                               "(launch with torchrun, which sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def init_from_env(device_type: str = "cpu") -> DistInfo:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1); a no-op otherwise.

    The rendezvous waits at most ``BITRIEVE_DIST_TIMEOUT`` seconds for every rank and for the master; past it every
    process ends with a :class:`DistributedError` naming what was missing.
    """
    world = _env_int("WORLD_SIZE") if "WORLD_SIZE" in os.environ else 1
    if world <= 1:
        return DistInfo()
    rank = _env_int("RANK")
    local = _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else 0
    if not 0 <= rank < world:
        raise DistributedError(f"multi-process start: RANK={rank} is outside WORLD_SIZE={world}")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise DistributedError(f"multi-process start: WORLD_SIZE={world} but {name} is not set (launch with "
                                   "torchrun)")
    if dist.is_initialized():
        return current()
    timeout = timeout_seconds()
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    try:
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo",
                                timeout=timedelta(seconds=timeout))
    except Exception as e:  # noqa: BLE001 - every start-up failure becomes one line
        what = ("the other ranks did not all join" if rank == 0 else "the master could not be reached or did not "
                "answer")
        raise DistributedError(f"multi-process start (rank {rank} of WORLD_SIZE={world}, master {where}): {what} "
                               f"within {timeout:g} s ({TIMEOUT_ENV}); check WORLD_SIZE against the processes "
                               f"started and the master's address [{_first_line(e)}]") from None
    info = DistInfo(rank, world, local)
    if info.is_main:
        _start_heartbeat()
    return info


def current() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def _store():
    return dist.distributed_c10d._get_default_store()


_beat_stop = threading.Event()
_beat_thread: threading.Thread | None = None


def _start_heartbeat(period: float = 1.0) -> None:
    """Rank 0 writes an increasing counter into the rendezvous store every ``period`` s until :func:`shutdown` (or
    the interpreter's exit) stops it; the thread is joined there, so no store call is in flight when the process
    group and the store are torn down (a daemon thread left inside one aborted the process at exit)."""
    global _beat_thread
    store = _store()
    store.set(_HEARTBEAT, "0")

    def beat() -> None:
        n = 0
        while not _beat_stop.wait(period):
            n += 1
            try:
                store.set(_HEARTBEAT, str(n))
            except Exception:  # noqa: BLE001 - the store is gone: the process group is ending
                return

    _beat_stop.clear()
    _beat_thread = threading.Thread(target=beat, name="bitrieve-heartbeat", daemon=True)
    _beat_thread.start()
    atexit.register(_stop_heartbeat)


def _stop_heartbeat() -> None:
    global _beat_thread
    _beat_stop.set()
    if _beat_thread is not None:
        _beat_thread.join(timeout=10)
        _beat_thread = None


def barrier(info: DistInfo, tag: str = "barrier") -> None:
    """Every rank meets here; the others wait for rank 0's solitary work (evaluation, checkpoint) for as long as its
    heartbeat goes on, and fail in one line when it stops for ``BITRIEVE_DIST_TIMEOUT`` seconds."""
    if not info.enabled:
        return
    global _meetings
    _meetings += 1  # every rank meets in the same order, so the n-th meeting has the same key on every rank
    timeout = timeout_seconds()
    key = f"bitrieve/reached/{_meetings}"
    try:
        store = _store()
        if info.is_main:
            store.set(key, "1")
        else:
            last, since = None, time.time()
            while not store.check([key]):
                beat = store.get(_HEARTBEAT)
                if beat != last:
                    last, since = beat, time.time()
                elif time.time() - since > timeout:
                    raise DistributedError(f"rank {info.rank}: rank 0 stopped responding (no heartbeat for "
                                           f"{timeout:g} s, {TIMEOUT_ENV}) before '{tag}'")
                time.sleep(0.05)
        dist.barrier()
    except DistributedError:
        raise
    except Exception as e:  # noqa: BLE001
        raise DistributedError(f"rank {info.rank}: lost the other processes at '{tag}' [{_first_line(e)}]") from None


@contextlib.contextmanager
def faults_as_one_line(info: DistInfo):
    """Turn a failed collective (a rank that died, a timeout) into one :class:`DistributedError` line."""
    if not info.enabled:
        yield
        return
    try:
        yield
    except BitrieveError:
        raise
    except (RuntimeError, dist.DistError) as e:
        text = str(e)
        if not any(w in text.lower() for w in ("gloo", "nccl", "connection", "timed out", "timeout", "peer",
                                               "socket", "store", "broken pipe")):
            raise
        raise DistributedError(f"rank {info.rank}: another process was lost or a collective timed out after "
                               f"{timeout_seconds():g} s ({TIMEOUT_ENV}) [{_first_line(e)}]") from None


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Average ``.grad`` over ranks (one flat all-reduce; parameters without a gradient count as zero)."""
    if not info.enabled or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        if p.grad is not None:  # a parameter this rank's loss never touched stays without gradient, as in 1 process
            p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def shutdown(info: DistInfo) -> None:
    """Stop the heartbeat, let every rank arrive (so rank 0, which may host the rendezvous store, does not tear it
    down under a rank still using it), then destroy the process group."""
    _stop_heartbeat()
    if info.enabled and dist.is_initialized():
        with contextlib.suppress(Exception):  # a lost rank: nothing to wait for
            dist.barrier()
        dist.destroy_process_group()


def run_devices(spec: str) -> tuple[torch.device, DistInfo]:
    """A run's device (config key ``device``), and the process group under torchrun (each rank on its own GPU)."""
    from bitrieve.devices import resolve_device

    device = resolve_device(spec)
    info = init_from_env(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.set_device(device)
    return device, info
