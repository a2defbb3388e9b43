"""The public benchmark report; the same as ``vidrestore bench`` (see ``vidrestore bench --help``).

    .venv/bin/python benchmarks/bench.py [--quick] [--photos DIR] [--out docs/bench]

Degraded crops and panning clips of the validation photos, restored by the degraded input,
OpenCV NLM (single- and multi-frame), BM3D, MVTools Degrain2, Real-ESRGAN x4plus and vidrestore:
PSNR/SSIM, warping error, MP/s and frames/s, the engine's FLOP/s against the matmul peak, all in
one run; writes ``report.md``, ``results.json`` and plots. The logic is :mod:`vidrestore.bench`.
"""

from __future__ import annotations

import sys

from vidrestore.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
