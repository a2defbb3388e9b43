"""Losses of the spec, as small functions.

- ``l1_terms(restored, clean, eps)``: the L1 of the spec — the mean absolute error over every
  element (``per_sample_l1`` averaged over the batch) — as (the term optimised, the plain mean
  logged); the two are one tensor unless ``eps`` > 0.
- ``sample_balanced(per_sample, eps)``: an opt-in aggregation of per-sample L1 values over the
  batch, mean of eps·log(1 + L1_i / eps) (``TrainConfig.l1_sample_eps``). Each sample's gradient
  is weighed by 1 / (1 + L1_i / eps): samples restored to within eps count as in the plain mean,
  badly damaged ones count less, as a mean of PSNRs over pictures weighs them. As eps grows it
  becomes the plain mean (the spec's L1, the default).
- ``gan_g_loss(fake_logits)``: L_GAN = −Σ log D(I_t, G(I_s)) with D's logits, computed as
  −Σ logsigmoid(logits) (stable where D is confident). The sum runs over every patch logit of
  every sample, so it grows linearly with batch size and with patch count (∝ H·W/64 for the
  default 3-layer PatchGAN): a 16×128² batch has 16·16·16 = 4096 terms. With the spec's
  k2 = 1e-4 that makes the GAN term ≈ 0.4·(−log D) per batch next to an L1 of ~0.03: keep batch
  and patch size fixed when comparing k2 values, or rescale k2 by the term count.
- ``gan_d_loss(real_logits, fake_logits)``: the discriminator's binary cross-entropy, mean over
  patches: −log D(real) − log(1 − D(fake)).
- ``joint(l1_value, gan_value, k1, k2)`` = k1·L1 + k2·L_GAN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["per_sample_l1", "sample_balanced", "l1_terms", "gan_g_loss", "gan_d_loss", "joint"]


def per_sample_l1(restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of each sample (N,) of an N-first batch."""
    return (restored.float() - clean.float()).abs().flatten(1).mean(1)


def sample_balanced(per_sample: torch.Tensor, eps: float) -> torch.Tensor:
    """Mean over samples of eps·log(1 + L1_i / eps); ``eps <= 0`` gives the plain mean."""
    if eps <= 0:
        return per_sample.mean()
    return (eps * torch.log1p(per_sample / eps)).mean()


def l1_terms(restored: torch.Tensor, clean: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(the L1 term to optimise — :func:`sample_balanced` of the per-sample L1 —, the plain mean L1 to log)."""
    per_sample = per_sample_l1(restored, clean)
    plain = per_sample.mean()
    return (plain if eps <= 0 else sample_balanced(per_sample, eps)), plain


def gan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """−Σ log σ(logits): the generator wants D to call its output real."""
    return -F.logsigmoid(fake_logits.float()).sum()


def gan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Mean of −log σ(real) − log(1 − σ(fake)); note log(1 − σ(x)) = logsigmoid(−x)."""
    return -(F.logsigmoid(real_logits.float()).mean() + F.logsigmoid(-fake_logits.float()).mean())


def joint(l1_value: torch.Tensor, gan_value: torch.Tensor, *, k1: float = 1.0, k2: float = 1e-4) -> torch.Tensor:
    return k1 * l1_value + k2 * gan_value
