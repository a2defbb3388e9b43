"""Shared fixtures: small generated image folders (no network, no corpus needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"


def textured_image(seed: int, height: int = 192, width: int = 224) -> np.ndarray:
    """A uint8 RGB picture with smooth gradients, edges and fine texture (deterministic)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin((x + y) / 17.0)], axis=-1)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(10, 50)
        base[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    base += 0.08 * np.sin(x * rng.uniform(0.5, 1.5))[..., None] * np.cos(y * rng.uniform(0.5, 1.5))[..., None]
    return np.clip(base * 255 + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train/`` with 4 and ``val/`` with 2 textured 192×224 PNGs."""
    from vidrestore.io import Image, write_image

    root = tmp_path_factory.mktemp("images")
    for split, count, offset in (("train", 4, 0), ("val", 2, 100)):
        for index in range(count):
            write_image(root / split / f"img{index}.png", Image(pixels=textured_image(offset + index)))
    return root


def write_audio_only(path: Path) -> Path:
    """A file with AAC audio alone under ``path``'s (video) suffix, as a phone's voice memo in .3gp."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        for index in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
