"""What limits training speed: the data workers or the training step? Both measured in one run.

    .venv/bin/python benchmarks/train_throughput.py [--set key=value ...] [--batches 40] [--compile]

Takes the same ``--set`` overrides as ``vidrestore train`` (data, crop and batch size, workers,
device, precision). Prints, from the same run:

1. **data**: batches/s the training DataLoader delivers (``config.num_workers`` processes making
   degraded pairs on the fly), with no training attached;
2. **step, read every step**: L1 generator steps/s (forward, backward, AdamW, EMA) on one fixed
   batch already on the device, the loss read back (``.item()``) after every step — how the
   training loop worked before session 9; on a GPU each read makes the host wait for the device;
3. **step, read every 25**: the same with the loss left on the device, as the loop now does;
4. with ``--compile``: step 3 with the generator under ``torch.compile`` (compile time excluded).

Then the ratios: step (3) against (2), and which of data and step bounds a training run. On a lent
GPU this says whether more workers, fewer host syncs or compilation would raise the step rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time

import torch

from vidrestore.device import resolve_device
from vidrestore.nets.unet import UNet
from vidrestore.train.config import TrainConfig, apply_overrides
from vidrestore.train.ema import EMA
from vidrestore.train.loop import l1_step, train_loader, training_precision

from common import ROOT


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def data_rate(config: TrainConfig, batches: int, device: torch.device) -> float:
    """Batches per second from the training DataLoader (after the workers' first batches)."""
    warm = max(2, config.num_workers)
    loader = iter(train_loader(config, start=0, total=warm + batches, pin_memory=device.type == "cuda"))
    for _ in itertools.islice(loader, warm):
        pass
    started = time.perf_counter()
    for batch in loader:
        for tensor in batch:
            tensor.to(device, non_blocking=True)
    _synchronize(device)
    return batches / (time.perf_counter() - started)


def step_rate(config: TrainConfig, steps: int, device: torch.device, dtype: torch.dtype, *, read_every: int,
              compile_model: bool = False) -> float:
    """L1 generator steps per second on one fixed random batch; the loss is read every ``read_every``."""
    torch.manual_seed(0)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    generator = UNet(**dataclasses.asdict(config.generator)).to(device, memory_format=memory_format)
    torch.nn.init.normal_(generator.tail.weight, std=1e-3)  # a net that is not the identity
    ema = EMA(generator, config.ema_decay)
    optimizer = torch.optim.AdamW(generator.parameters(), lr=config.lr_g, betas=(0.9, 0.99))
    model = torch.compile(generator) if compile_model else generator
    shape = (config.batch_size, 3, config.patch_size, config.patch_size)
    clean = torch.rand(shape, device=device).contiguous(memory_format=memory_format)
    degraded = (clean + 0.05 * torch.randn(shape, device=device)).contiguous(memory_format=memory_format)

    def run(count: int, first: int) -> None:
        for index in range(first, first + count):
            loss = l1_step(model, generator, optimizer, ema, degraded, clean, config=config, device=device,
                           dtype=dtype, g_step=index)
            if (index + 1) % read_every == 0:
                float(loss)

    run(max(3, read_every), 0)  # warm-up (and compilation)
    _synchronize(device)
    started = time.perf_counter()
    run(steps, max(3, read_every))
    _synchronize(device)
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="training config override")
    parser.add_argument("--batches", type=int, default=40, help="batches (and steps) timed per measurement")
    parser.add_argument("--compile", action="store_true", help="also time the step under torch.compile")
    args = parser.parse_args()
    defaults = [f"train_data={ROOT / 'data/curated/train'}"] if (ROOT / "data/curated/train").is_dir() else []
    config = apply_overrides(TrainConfig(), defaults + args.set)
    device = resolve_device(config.device)
    dtype = training_precision(config.precision, device)  # what vidrestore train uses
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"{str(dtype).removeprefix('torch.')}, batch {config.batch_size} × {config.patch_size}², "
          f"{config.num_workers} data workers, data {config.train_data}")
    data = data_rate(config, args.batches, device)
    print(f"data:                      {data:8.2f} batches/s")
    synced = step_rate(config, args.batches, device, dtype, read_every=1)
    print(f"step, loss read every step: {synced:8.2f} steps/s")
    deferred = step_rate(config, args.batches, device, dtype, read_every=25)
    print(f"step, loss read every 25:   {deferred:8.2f} steps/s  ({deferred / synced:.2f}× the above)")
    best = deferred
    if args.compile:
        compiled = step_rate(config, args.batches, device, dtype, read_every=25, compile_model=True)
        print(f"step, compiled:             {compiled:8.2f} steps/s  ({compiled / deferred:.2f}× eager)")
        best = max(best, compiled)
    bound = "data (add workers or cheapen the degradations)" if data < best else "the training step"
    print(f"bound: {bound}; a training run can reach ~{min(data, best):.2f} steps/s")


if __name__ == "__main__":
    main()
