import numpy as np
import pytest
import torch

from bench.data import balanced_order, stratified_split, train_batches
from bench.errors import DataError


def test_mnist5k_split_is_real_balanced_and_disjoint(split, protocol):
    assert split.x_train.shape == (protocol.n_train, 1, 28, 28)
    assert split.x_test.shape == (protocol.n_test, 1, 28, 28)
    assert split.x_train.dtype == torch.float32
    assert 0.0 <= float(split.x_train.min()) and float(split.x_train.max()) == 1.0
    assert torch.bincount(split.y_train).tolist() == [400] * 10
    assert torch.bincount(split.y_test).tolist() == [100] * 10
    # no test image appears in the training set
    train = {bytes(x.numpy()) for x in split.x_train}
    assert not any(bytes(x.numpy()) in train for x in split.x_test)


def test_stratified_split_is_a_function_of_its_seed():
    y = np.repeat(np.arange(10), 50)
    a = stratified_split(y, 300, 100, seed=1)
    b = stratified_split(y, 300, 100, seed=1)
    c = stratified_split(y, 300, 100, seed=2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert not set(a[0]) & set(a[1])


def test_stratified_split_rejects_impossible_sizes():
    y = np.repeat(np.arange(10), 5)
    with pytest.raises(DataError, match="class 0 has 5 examples"):
        stratified_split(y, 40, 20, seed=0)
    with pytest.raises(DataError, match="multiples"):
        stratified_split(y, 33, 10, seed=0)


def test_train_batches_cover_every_example_once_per_epoch():
    x, y = torch.arange(10).float().view(10, 1, 1, 1), torch.arange(10)
    batches = list(train_batches(x, y, 4, torch.Generator().manual_seed(0)))
    assert [len(b.y) for b in batches] == [4, 4, 2]
    seen = torch.cat([b.index for b in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert all(torch.equal(b.y, b.index) for b in batches)  # index maps back to the example


def test_every_prefix_of_the_test_set_is_class_balanced(split):
    """The eps curve, the sanity checks, Square and --smoke evaluate prefixes of the test set."""
    for n in (10, 200, 500, 1000):
        assert torch.bincount(split.y_test[:n], minlength=10).tolist() == [n // 10] * 10, n


def test_balanced_order_is_a_seeded_permutation_balanced_in_every_round():
    y = np.repeat(np.arange(4), [5, 5, 5, 3])  # a short class runs out: later rounds lack it
    a, b, c = balanced_order(y, 0), balanced_order(y, 0), balanced_order(y, 1)
    assert sorted(a.tolist()) == list(range(len(y))) and np.array_equal(a, b)
    assert not np.array_equal(a, c)
    for r in range(3):
        assert sorted(y[a[4 * r:4 * r + 4]].tolist()) == [0, 1, 2, 3]
    assert sorted(y[a[12:]].tolist()) == [0, 0, 1, 1, 2, 2]
