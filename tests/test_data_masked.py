"""Exp2 masked crops: mask convention, target = source * (1 - mask), dark-region avoidance,
sample diversity, caching; the shared photo loader."""

import numpy as np
import pytest
import torch

from deepmi.data.cache import sample_rng
from deepmi.data.masked_crops import (
    MaskedCropsDataset,
    boxes_to_masks,
    generate_masked_pairs,
    nearest_neighbour_correlation,
    place_rectangle,
)
from deepmi.data.photos import load_photos, random_crops

SMALL = dict(height=32, width=96, rect_height=8, rect_width=40)


def test_photos_load_offline_as_gray_unit_floats():
    photos = load_photos()
    assert len(photos) >= 10
    for name, image in photos.items():
        assert image.ndim == 2 and image.dtype == np.float32, name
        assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.02, name
    assert load_photos() is photos  # loaded once per process


def test_random_crops_shape_range_and_determinism():
    crops = random_crops([sample_rng(0, "train", i) for i in range(3)], 20, 60)
    again = random_crops([sample_rng(0, "train", i) for i in range(3)], 20, 60)
    assert crops.shape == (3, 20, 60) and crops.dtype == np.float32
    assert 0.0 <= crops.min() and crops.max() <= 1.0
    assert np.array_equal(crops, again)
    with pytest.raises(ValueError, match="at least 2x2"):
        random_crops([sample_rng(0, "train", 0)], 1, 60)


def test_pairs_follow_the_mask_convention():
    pairs = generate_masked_pairs(8, progress=False, **SMALL)
    source, target, mask, box = pairs["source"], pairs["target"], pairs["mask"], pairs["box"]
    assert source.shape == target.shape == mask.shape == (8, 32, 96)
    assert source.dtype == target.dtype == mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    assert np.all(mask.sum(axis=(1, 2)) == 8 * 40)
    for s, t, m, (top, left, h, w) in zip(source, target, mask, box, strict=True):
        assert (h, w) == (8, 40) and 0 <= top <= 32 - 8 and 0 <= left <= 96 - 40
        assert m[top : top + h, left : left + w].all()  # 1 INSIDE the removed rectangle
        assert np.all(t[m == 1] == 0) and np.array_equal(t[m == 0], s[m == 0])
    assert np.array_equal(boxes_to_masks(box, 32, 96), mask)


def test_rectangle_avoids_already_black_regions():
    image = np.zeros((32, 96), dtype=np.float32)
    image[:, 60:] = 0.5  # only the right part is not black
    rng = np.random.default_rng(0)
    for _ in range(20):
        top, left = place_rectangle(image, rng, 8, 20, max_dark_fraction=0.5)
        assert np.mean(image[top : top + 8, left : left + 20] < 0.05) <= 0.5
    # All black: falls back to a valid position rather than looping forever.
    top, left = place_rectangle(np.zeros((32, 96)), rng, 8, 20)
    assert 0 <= top <= 24 and 0 <= left <= 76


def test_generated_boxes_are_rarely_dark_and_crops_not_flat():
    pairs = generate_masked_pairs(120, progress=False, **SMALL)
    dark = [(s[m == 1] < 13).mean() for s, m in zip(pairs["source"], pairs["mask"], strict=True)]
    assert max(dark) <= 0.5
    assert pairs["source"].std(axis=(1, 2)).min() >= 0.04 * 255
    # Without the rule some crops are nearly flat (sky, moon), so the rule does something.
    flat_allowed = generate_masked_pairs(120, progress=False, min_std=0.0, **SMALL)["source"]
    assert flat_allowed.std(axis=(1, 2)).min() < 0.04 * 255


def test_samples_are_not_near_duplicates():
    pairs = generate_masked_pairs(60, progress=False, height=48, width=160, rect_height=10, rect_width=50)
    nn = nearest_neighbour_correlation(pairs["source"] / 255.0, size=(12, 40))
    assert nn.shape == (60,)
    assert np.median(nn) < 0.8 and np.mean(nn > 0.97) < 0.05
    # The measure itself flags an exact duplicate.
    images = np.random.default_rng(0).random((3, 16, 40))
    images[2] = images[0]
    np.testing.assert_allclose(nearest_neighbour_correlation(images, size=(8, 20))[[0, 2]], 1.0, atol=1e-5)


def test_dataset_items_and_cache(tmp_path):
    train = MaskedCropsDataset(tmp_path, "train", n_train=8, n_test=4, progress=False, **SMALL)
    test = MaskedCropsDataset(tmp_path, "test", n_train=8, n_test=4, progress=False, **SMALL)
    assert len(train) == 8 and len(test) == 4
    item = train[3]
    assert set(item) == {"source", "target", "mask", "box"}
    assert item["source"].shape == item["target"].shape == item["mask"].shape == (1, 32, 96)
    assert item["source"].dtype == torch.float32 and 0 <= item["source"].min() and item["source"].max() <= 1
    torch.testing.assert_close(item["target"], item["source"] * (1 - item["mask"]))
    assert item["box"].tolist()[2:] == [8, 40]
    assert not np.array_equal(train.source[:4], test.source)
    again = MaskedCropsDataset(tmp_path, "train", n_train=8, n_test=4, progress=False, **SMALL)
    assert np.array_equal(again.source, train.source) and np.array_equal(again.mask, train.mask)
    assert len(list((tmp_path / "synthetic").glob("masked_crops-*.npz"))) == 2
    other_seed = MaskedCropsDataset(tmp_path, "train", n_train=8, seed=1, progress=False, **SMALL)
    assert not np.array_equal(other_seed.source, train.source)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="must fit"):
        generate_masked_pairs(1, height=32, width=96, rect_height=40, rect_width=200, progress=False)
    with pytest.raises(ValueError, match="split"):
        MaskedCropsDataset(None, "validation", progress=False, **SMALL)
    with pytest.raises(ValueError, match="max_dark_fraction"):
        generate_masked_pairs(1, max_dark_fraction=2.0, progress=False, **SMALL)
