"""One process pool helper for the file-parallel tools (``degrade``, ``curate``, ``quality label``).

Workers come from a forkserver (a plainly forked child can inherit a held OpenCV/OpenMP lock and
hang) and run single-threaded, since the pool already uses every core. torch is only touched
if a worker has imported it, so tools that don't need it start fast.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

__all__ = ["pool_map"]


def _single_thread_worker() -> None:
    import cv2

    cv2.setNumThreads(1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def pool_map(function: Callable[[Any], Any], tasks: Sequence[Any], jobs: int,
             *, preload: Iterable[str] = ()) -> Iterator[Any]:
    """Results of ``function`` over ``tasks`` in completion order, on ``jobs`` processes (a
    plain loop for one job or one task). ``preload``: modules the fork server imports once."""
    if jobs <= 1 or len(tasks) <= 1:
        yield from map(function, tasks)
        return
    context = multiprocessing.get_context("forkserver")
    if preload:
        context.set_forkserver_preload(list(preload))
    with context.Pool(jobs, initializer=_single_thread_worker) as pool:
        yield from pool.imap_unordered(function, tasks, chunksize=1)
