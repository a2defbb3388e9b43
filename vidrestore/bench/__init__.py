"""The public benchmark behind ``vidrestore bench``: vidrestore against classic and learned
baselines on the same degraded photos and clips, with speeds measured in the same run.

* :mod:`.testset` — crops and panning clips of clean photos, degraded with fixed seeds;
* :mod:`.methods` — every compared method behind one callable (NLM, BM3D, MVTools Degrain2,
  Real-ESRGAN, vidrestore), optional ones reporting "not installed" instead of failing;
* :mod:`.measure` — PSNR/SSIM, timing, the machine's matmul peak, the generator's FLOPs;
* :mod:`.run` — :func:`run_bench`, every figure as a JSON-able dict;
* :mod:`.report` — :func:`write_report`: ``report.md``, ``results.json`` and plots.

The stand-alone scripts in ``benchmarks/`` use the same methods and measurements.
"""

from __future__ import annotations

from vidrestore.bench.report import summary, write_report
from vidrestore.bench.run import BenchConfig, run_bench

__all__ = ["BenchConfig", "run_bench", "summary", "write_report"]
