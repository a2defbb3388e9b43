"""Networks and losses: forward/backward sweep, any size, hand-computed loss values."""

from __future__ import annotations

import math

import pytest
import torch

from vidrestore import losses
from vidrestore.nets.discriminator import PatchDiscriminator
from vidrestore.nets.unet import ResBlock, UNet

TINY = dict(base_channels=8, channel_multipliers=(1, 2, 4), encoder_blocks=(1, 1, 1), decoder_blocks=(1, 1, 1), middle_blocks=1)


@pytest.mark.parametrize("size", [(32, 32), (37, 53), (64, 48)])
def test_unet_any_size_and_every_parameter_learns(size):
    torch.manual_seed(0)
    model = UNet(**TINY)
    # The tail starts at zero (identity net); perturb it so gradients reach every layer.
    torch.nn.init.normal_(model.tail.weight, std=0.05)
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    model = model.double()
    out = model(x)
    assert out.shape == x.shape
    loss = (out - x.flip(-1)).abs().mean()
    loss.backward()
    assert torch.isfinite(loss)
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, f"{name} got no gradient"


def test_unet_starts_as_identity_and_rejects_bad_shapes():
    model = UNet(**TINY)
    x = torch.rand(1, 3, 40, 24)
    assert torch.allclose(model(x), x, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.rand(1, 4, 32, 32))


def test_unet_gradcheck_float64():
    torch.manual_seed(1)
    model = UNet(base_channels=2, channel_multipliers=(1, 2), encoder_blocks=(1, 1), decoder_blocks=(1, 1), middle_blocks=1).double()
    torch.nn.init.normal_(model.tail.weight, std=0.1)
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,), eps=1e-6, atol=1e-4)


def test_discriminator_patches_and_gradients():
    torch.manual_seed(0)
    disc = PatchDiscriminator(base_channels=8)
    candidate, degraded = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    logits = disc(candidate, degraded)
    assert logits.shape == (2, 1, 8, 8)
    losses.gan_d_loss(logits, disc(degraded, degraded)).backward()
    for name, parameter in disc.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    # Conditional: the same candidate judged against another input gives other logits.
    assert not torch.allclose(disc(candidate, degraded), disc(candidate, torch.rand_like(degraded)))


def test_loss_values_by_hand():
    restored = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
    clean = torch.tensor([[[[0.5, 0.5], [0.0, 0.25]]]])
    term, plain = losses.l1_terms(restored, clean, 0.0)
    assert term is plain and plain.item() == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    logits = torch.tensor([0.0, 2.0, -1.0])
    # -sum log sigmoid(l): log 2 + log(1 + e^-2) + log(1 + e^1)
    expected = math.log(2) + math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1))
    assert losses.gan_g_loss(logits).item() == pytest.approx(expected, rel=1e-6)
    # D loss: mean(-log sig(real)) + mean(-log(1 - sig(fake)))
    real, fake = torch.tensor([3.0, 0.0]), torch.tensor([-3.0, 1.0])
    expected_d = (math.log(1 + math.exp(-3)) + math.log(2)) / 2 + (math.log(1 + math.exp(-3)) + math.log(1 + math.exp(1))) / 2
    assert losses.gan_d_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert losses.joint(torch.tensor(0.2), torch.tensor(1000.0)).item() == pytest.approx(0.2 + 1e-4 * 1000)
    assert losses.joint(torch.tensor(0.2), torch.tensor(10.0), k1=2.0, k2=0.5).item() == pytest.approx(0.4 + 5.0)


def test_sample_balanced_l1_by_hand():
    restored = torch.zeros(2, 1, 1, 2)
    clean = torch.tensor([[[[0.01, 0.03]]], [[[0.4, 0.6]]]])
    per_sample = losses.per_sample_l1(restored, clean)
    assert per_sample.tolist() == pytest.approx([0.02, 0.5])
    # eps·log(1 + e/eps), averaged: the damaged sample counts far less than in the plain mean.
    expected = (0.02 * math.log(1 + 1.0) + 0.02 * math.log(1 + 25.0)) / 2
    assert losses.sample_balanced(per_sample, 0.02).item() == pytest.approx(expected, rel=1e-6)
    assert losses.sample_balanced(per_sample, 0.0).item() == pytest.approx(0.26)
    assert losses.sample_balanced(per_sample, 1e6).item() == pytest.approx(0.26, rel=1e-5)
    # Each sample's gradient is weighed by 1 / (1 + e_i / eps).
    values = per_sample.clone().requires_grad_(True)
    losses.sample_balanced(values, 0.02).backward()
    assert values.grad.tolist() == pytest.approx([0.5 / 2, (1 / 26) / 2], rel=1e-6)


def test_gan_loss_is_stable_for_confident_discriminator():
    # -log sigmoid(-200) = 200 exactly in logsigmoid form; a naive log(sigmoid) gives inf.
    assert losses.gan_g_loss(torch.tensor([-200.0])).item() == pytest.approx(200.0)
    assert math.isfinite(losses.gan_d_loss(torch.tensor([-200.0]), torch.tensor([200.0])).item())


def test_growing_a_unet_keeps_its_function_and_then_trains_the_new_blocks():
    torch.manual_seed(0)
    small = UNet(**TINY).double()
    torch.nn.init.normal_(small.tail.weight, std=0.05)
    grown = UNet(**(TINY | dict(encoder_blocks=(2, 1, 2), decoder_blocks=(1, 3, 1), middle_blocks=2))).double()
    added = grown.load_grown(small.state_dict())
    assert added == ["encoders.0.1", "encoders.2.1", "middle.1", "decoders.1.1", "decoders.1.2"]
    x = torch.rand(2, 3, 40, 40, dtype=torch.float64)
    assert torch.equal(grown(x), small(x))  # new blocks are identities
    (grown(x) - x.flip(-1)).abs().mean().backward()
    assert all(grown.get_submodule(name).scale.grad.abs().sum() > 0 for name in added)
    # Not a smaller U-Net of the same layout (narrower here, or another kernel): refused, as
    # load_state_dict would.
    with pytest.raises(RuntimeError, match="shape mismatch"):
        UNet(**(TINY | dict(base_channels=4))).load_grown(small.state_dict())
    odd = small.state_dict() | {"head.weight": torch.zeros(8, 12, 5, 5, dtype=torch.float64)}
    with pytest.raises(RuntimeError, match="shape mismatch"):
        UNet(**TINY).load_grown(odd)
    deeper = UNet(**(TINY | dict(middle_blocks=2)))
    partial = {k: v for k, v in deeper.state_dict().items() if k != "middle.1.conv2.weight"}
    with pytest.raises(RuntimeError, match="not whole residual blocks"):
        deeper.load_grown(partial)


@pytest.mark.parametrize("multipliers", [(2, 2, 4), (2, 3, 5)])
def test_widening_a_unet_keeps_its_function_and_then_trains_the_new_channels(multipliers):
    """Wider levels (finest only, or every level), more blocks and a gate at once: the grown net
    computes exactly what the small one did; one step later it does not, and every weight that
    reads a new channel (zero at first) has moved."""
    torch.manual_seed(0)
    small = UNet(**TINY).double()
    torch.nn.init.normal_(small.tail.weight, std=0.05)
    wide = UNet(**(TINY | dict(channel_multipliers=multipliers, encoder_blocks=(2, 1, 1), gate=True))).double()
    added = wide.load_grown(small.state_dict())
    assert {"encoders.0.1", "gate", "head.weight (widened)", "tail.weight (widened)"} <= set(added)
    x = torch.rand(2, 3, 40, 40, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(wide(x), small(x))
        head_new = wide.head(torch.nn.functional.pixel_unshuffle(x, 2))[:, 8:]
    assert head_new.abs().mean() > 0  # the new channels carry features (nothing reads them yet)
    reads = wide.tail.weight.detach()[:, 8:]
    assert torch.count_nonzero(reads) == 0
    opt = torch.optim.SGD(wide.parameters(), lr=0.1)
    for _ in range(2):  # step 1 moves the zero reads; step 2 reaches what writes the new channels
        opt.zero_grad()
        (wide(x) - x.flip(-1)).abs().mean().backward()
        opt.step()
    assert torch.count_nonzero(wide.tail.weight.detach()[:, 8:]) > 0
    assert wide.encoders[0][0].conv2.weight.grad[8:].abs().sum() > 0
    with torch.no_grad():
        assert not torch.equal(wide(x), small(x))


def test_gate_grows_neutral_then_learns_to_leave_clean_input_alone():
    """A gate added to trained weights changes nothing; trained (alone) on clean input = target it
    closes, so a net that wrongly "corrects" clean pictures learns to leave them as they are."""
    torch.manual_seed(0)
    plain = UNet(**TINY)
    torch.nn.init.normal_(plain.tail.weight, std=0.05)  # a net whose correction is not zero
    gated = UNet(**(TINY | dict(gate=True)))
    assert gated.load_grown(plain.state_dict()) == ["gate"]
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(gated(x), plain(x))
        before = (gated(x) - x).abs().mean()
    gated.requires_grad_(False)
    gated.gate.requires_grad_(True)
    optimizer = torch.optim.Adam(gated.gate.parameters(), lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        (gated(x) - x).abs().mean().backward()
        optimizer.step()
    with torch.no_grad():
        after = (gated(x) - x).abs().mean()
    assert after < 0.2 * before, (before, after)
    # And a gate can also strengthen a correction that is too timid (weight up to 2).
    with torch.no_grad():
        gated.gate.weight.zero_()
        gated.gate.bias.fill_(20.0)
        assert torch.allclose(gated(x) - x, 2 * (plain(x) - x), atol=1e-5)


def test_folding_the_residual_scales_keeps_the_function_and_its_dtype():
    """The engine folds each block's residual scale into its second conv (one pass over the
    features fewer per block): same outputs to rounding, and under bf16 autocast the same dtypes
    (the fp32 scale made each block's sum fp32; a folded block must not drop the stream to bf16)."""
    import copy

    torch.manual_seed(0)
    net = UNet(base_channels=8, channel_multipliers=(1, 2), encoder_blocks=(1, 1), decoder_blocks=(1, 1),
               middle_blocks=1).eval()
    for block in net.modules():
        if isinstance(block, ResBlock):
            torch.nn.init.normal_(block.scale, 0.3, 0.2)  # scales of a trained net, not the 0.1 start
    net.tail.weight.data.normal_(0, 0.05)
    folded = copy.deepcopy(net)
    for block in folded.modules():
        if isinstance(block, ResBlock):
            block.fold_scale()
            block.fold_scale()  # a second fold is a no-op
    x = torch.rand(2, 3, 40, 56)
    with torch.no_grad():
        assert torch.allclose(net(x), folded(x), atol=1e-5) and not torch.equal(net(x), x)
        seen = {}
        for name, model in (("plain", net), ("folded", folded)):
            block = model.encoders[0][0]
            handle = block.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.dtype))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(x)
            handle.remove()
        assert seen["plain"] == seen["folded"] == torch.float32

