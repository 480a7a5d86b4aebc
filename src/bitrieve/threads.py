"""The one place that decides the CPU thread count and applies it to torch, numba and FAISS alike.

Decision: ``--threads N`` when given, else ``OMP_NUM_THREADS``, else the cores this process may run on. `configure`
(called by ``cli.main``) applies it to torch (which also sets MKL/OpenMP; before torch is imported, through
``OMP_NUM_THREADS``, which torch reads on import), numba (now, or when the package's kernels are imported) and
FAISS (now, or when the FAISS backend is loaded).

Why numba gets its own threading layer: numba's default ``omp`` layer runs its parallel kernels on the same libgomp
as torch and leaves libgomp's thread count at numba's (= all cores). Measured before this module existed: with
``OMP_NUM_THREADS=1``, ``torch.get_num_threads()`` went from 1 to 2 after the first evaluation, so every training
that followed in the same process ran on 2 threads (other numerics) and, beside one other CPU-bound process,
libgomp's spinning barrier slowed it 25-60x. The ``workqueue`` layer (numba's built-in pool, no OpenMP) never
touches libgomp; numba's own count is then set explicitly. A user who sets ``NUMBA_THREADING_LAYER`` keeps it, and
`restore_torch_threads` still puts torch's count back after each numba call site that may change it.

Why ``OMP_WAIT_POLICY=PASSIVE`` (set by `configure` unless the user set it, when torch is not imported yet): with
libgomp's default, a thread that finishes its share of a parallel region spins before sleeping, so on a machine whose
cores are busy with other jobs torch's own 2-thread regions crawl. Measured 2026-12-01 on the shared 2-core machine
(load average 4-6), AGCH demo training at 2 threads after one evaluation: 1.1 and 4.3 it/s with the default policy,
18.4 and 17.8 it/s with PASSIVE, alternating (``benchmarks/train_under_load.py --child --threads 2``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

_chosen: tuple[int, str] | None = None  # (threads, where the number came from), once `configure` ran


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def decide(cli_threads: int | None = None) -> tuple[int, str]:
    """``(threads, source)``: ``--threads``, else ``OMP_NUM_THREADS``, else the available cores."""
    from bitrieve.errors import ConfigError

    if cli_threads is not None:
        if int(cli_threads) < 1:
            raise ConfigError(f"--threads must be >= 1, got {cli_threads}")
        return int(cli_threads), "--threads"
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env.split(",")[0])  # OpenMP allows a comma list (nested levels); the first is ours
        except ValueError:
            raise ConfigError(f"OMP_NUM_THREADS={env!r}: expected a positive integer") from None
        if n < 1:
            raise ConfigError(f"OMP_NUM_THREADS={env!r}: expected a positive integer")
        return n, "OMP_NUM_THREADS"
    return available_cores(), "cores"


def chosen() -> int:
    """The thread count in force: what `configure` applied, else what `decide` would choose now."""
    if _chosen is not None:
        return _chosen[0]
    from bitrieve.errors import ConfigError

    try:
        return decide()[0]
    except ConfigError:  # a bad OMP_NUM_THREADS is reported by `configure`, which the CLI calls before any work
        return available_cores()


def use_numba_layer() -> None:
    """Make numba use the ``workqueue`` layer (see the module docstring) unless the user chose one. Must run before
    numba launches its threads; called when the package's numba kernels are imported."""
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return
    import numba

    numba.config.THREADING_LAYER = "workqueue"


def set_numba_threads(n: int | None = None) -> int:
    """numba's thread count = ``n`` (default: `chosen`), capped at the pool numba launched (NUMBA_NUM_THREADS)."""
    import numba

    use_numba_layer()
    n = min(chosen() if n is None else n, int(numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)
    return n


_faiss_set = False


def set_faiss_threads(faiss, n: int | None = None) -> None:
    """FAISS's OpenMP thread count = ``n`` (default: `chosen`). Without ``n`` it is applied once per process (when
    the FAISS backend is first loaded), so a later explicit ``faiss.omp_set_num_threads`` stays in force."""
    global _faiss_set
    if n is None and _faiss_set:
        return
    faiss.omp_set_num_threads(chosen() if n is None else n)
    _faiss_set = True


def configure(cli_threads: int | None = None) -> int:
    """Decide the thread count and apply it to torch, numba and (if already imported) FAISS. Returns it."""
    global _chosen
    n, source = decide(cli_threads)
    _chosen = (n, source)
    if "torch" in sys.modules:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    else:  # torch (its OpenMP and MKL) reads these when imported; commands that never import it stay fast
        os.environ["OMP_NUM_THREADS"] = str(n)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see the module docstring
    if "numba" in sys.modules:  # otherwise the package's numba kernels call set_numba_threads when imported
        set_numba_threads(n)
    if sys.modules.get("faiss") is not None:  # None: marked absent
        set_faiss_threads(sys.modules["faiss"], n)
    return n


@contextlib.contextmanager
def restore_torch_threads() -> Iterator[None]:
    """Put torch's thread count back after the block (a guard around numba calls, whatever layer numba uses)."""
    import torch

    before = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
