"""Crop-and-flip augmentation: batched, deterministic under a seed, and really cropping and
flipping; a protocol without augmentation draws nothing extra."""

import torch

from bench.data.augment import PAD, crop_flip, draw_crop_flip, for_epoch
from bench.data import train_batches


def _x(n=6):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(5))


def test_shape_dtype_and_range_are_kept():
    x = _x()
    out = for_epoch("crop-flip", len(x), torch.Generator().manual_seed(0), "cpu")(x, 0, len(x))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_the_same_seed_gives_the_same_augmentation():
    x = _x()

    def run(seed):
        return for_epoch("crop-flip", len(x), torch.Generator().manual_seed(seed), "cpu")(x, 0, 6)
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_crops_shift_with_a_zero_border_and_flips_mirror():
    x = _x(2)
    centre = torch.full((2,), PAD)
    no = torch.zeros(2, dtype=torch.bool)
    assert torch.equal(crop_flip(x, centre, centre, no), x)  # the centred crop is the image
    assert torch.equal(crop_flip(x, centre, centre, ~no), x.flip(3))
    corner = crop_flip(x, torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), no)
    assert torch.equal(corner[:, :, PAD:, PAD:], x[:, :, :-PAD, :-PAD])  # shifted down-right
    assert corner[:, :, :PAD].abs().sum() == 0 and corner[:, :, :, :PAD].abs().sum() == 0
    # per-image parameters: image 0 flipped and shifted, image 1 untouched
    mixed = crop_flip(x, torch.tensor([0, PAD]), torch.tensor([2 * PAD, PAD]),
                      torch.tensor([True, False]))
    assert torch.equal(mixed[1], x[1])
    assert torch.equal(mixed[0, :, PAD:, PAD:], x[0, :, :-PAD, PAD:].flip(2))  # W is dim 2 here
    assert mixed[0, :, :, :PAD].abs().sum() == 0  # the right border, mirrored to the left


def test_draws_cover_offsets_and_both_flips():
    dy, dx, flip = draw_crop_flip(4000, torch.Generator().manual_seed(0))
    assert set(dy.tolist()) == set(range(2 * PAD + 1)) == set(dx.tolist())
    assert 0.45 < flip.float().mean() < 0.55


def test_batches_are_augmented_only_when_asked():
    x, y = _x(10), torch.arange(10)
    plain = list(train_batches(x, y, 4, torch.Generator().manual_seed(0)))
    aug = list(train_batches(x, y, 4, torch.Generator().manual_seed(0), "crop-flip"))
    assert [torch.equal(a.index, b.index) for a, b in zip(plain, aug)] == [True] * 3  # same order
    assert all(not b.augmented and torch.equal(b.x, x[b.index]) for b in plain)
    assert all(b.augmented and b.x.shape == x[b.index].shape for b in aug)
    assert any(not torch.equal(b.x, x[b.index]) for b in aug)
    # "none" draws nothing beyond the order: the generator ends where it always did
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    list(train_batches(x, y, 4, g1))
    torch.randperm(10, generator=g2)
    assert torch.equal(g1.get_state(), g2.get_state())
