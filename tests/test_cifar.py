"""The cifar10 protocols' data: CIFAR-10 and CIFAR-10-C read from small files the tests write in
the datasets' exact on-disk formats, the errors a user gets when they are missing, and the whole
`kdbench run --protocol cifar10 --smoke` on them."""

import dataclasses
import os
import pickle
import subprocess
import sys
import urllib.error

import numpy as np
import pytest
import torch
import torchvision

from bench.data import cifar10 as cifar
from bench.data.cifar10c import Cifar10C
from bench.data import balanced_order, load_split
from bench.errors import DataError
from bench.eval.corruptions import CorruptedTestSet
from bench.protocols import get_protocol
from bench.records import read_record
from cifar_data import images, write_cifar10, write_cifar10c
from support import REPO

N_TRAIN, N_TEST = 100, 20


def small(name="cifar10", **changes):
    return dataclasses.replace(get_protocol(name), n_train=N_TRAIN, n_test=N_TEST, **changes)


@pytest.fixture
def skip_md5(monkeypatch):
    monkeypatch.setenv(cifar.SKIP_MD5_ENV, "1")


@pytest.fixture
def cifar_dir(tmp_path):
    write_cifar10(tmp_path, n_train=N_TRAIN, n_test=N_TEST)
    return tmp_path


def test_loader_reads_the_exact_images_and_labels(cifar_dir, skip_md5):
    split = load_split(small(), cifar_dir)
    x, y = images(N_TRAIN, seed=1)  # what write_cifar10 wrote, in file order
    xt, yt = images(N_TEST, seed=2)
    order = balanced_order(yt, small().split_seed)  # the test set in its class-balanced order
    assert split.x_train.shape == (N_TRAIN, 3, 32, 32) and split.x_train.dtype == torch.float32
    assert split.x_test.shape == (N_TEST, 3, 32, 32)
    assert torch.equal((split.x_train * 255).round().byte().permute(0, 2, 3, 1),
                       torch.from_numpy(x))
    assert torch.equal((split.x_test * 255).round().byte().permute(0, 2, 3, 1),
                       torch.from_numpy(xt[order]))
    assert split.y_train.tolist() == y.tolist() and split.y_test.tolist() == yt[order].tolist()
    assert split.corruption_files is None
    assert load_split(small(), cifar_dir).fingerprint == split.fingerprint
    # fewer test examples than the data holds: a prefix of the balanced order, every class
    fewer = load_split(dataclasses.replace(small(), n_train=50, n_test=10), cifar_dir)
    assert torch.equal(fewer.x_test, split.x_test[:10]) and len(fewer.y_train) == 50
    assert sorted(fewer.y_test.tolist()) == list(range(10))


def test_md5_is_checked_unless_skipped(cifar_dir, monkeypatch):
    monkeypatch.delenv(cifar.SKIP_MD5_ENV, raising=False)
    with pytest.raises(DataError, match=r"data_batch_1.*do not match the md5.*"
                                        r"KDBENCH_SKIP_CIFAR_MD5=1"):
        load_split(small(), cifar_dir)


def test_too_little_data_for_the_protocol_is_a_clear_error(cifar_dir, skip_md5):
    with pytest.raises(DataError, match="100 training images; protocol 'cifar10' needs 50000"):
        load_split(get_protocol("cifar10"), cifar_dir)


def test_missing_data_names_the_expected_files_and_the_fix(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="pass --data-dir DIR"):
        load_split(small(), None)
    monkeypatch.setenv(cifar.OFFLINE_ENV, "1")
    with pytest.raises(DataError) as e:
        load_split(small(), tmp_path)
    msg = str(e.value)
    assert "cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} expected" in msg
    assert "not downloading" in msg and cifar.URL in msg and "tar xzf" in msg


def test_a_failed_download_becomes_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(cifar.OFFLINE_ENV, raising=False)
    calls = []

    def no_network(url, root, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", no_network)
    with pytest.raises(DataError, match=r"downloading it failed \(URLError: .*Name or service"):
        load_split(small(), tmp_path / "new")
    assert calls == [cifar.URL]


def test_cifar10c_reader_memory_maps_and_derives_the_severity_size(tmp_path):
    names = ["gaussian_noise", "fog"]
    folder = write_cifar10c(tmp_path, names, n_per_severity=20)
    _, y = images(20, seed=3)
    positions = np.array([7, 0, 14, 3, 11, 2, 9, 5, 13, 1, 8, 12, 4, 10, 6])  # 15 of the 20
    files = Cifar10C.find(tmp_path, positions, y[positions], names + ["snow"], (1, 2, 3, 4, 5))
    assert files.names == ("gaussian_noise", "fog") and "snow" not in files
    assert files.per_severity == 20  # from the file's length / 5, not a hard-coded 10,000
    assert isinstance(files._open("fog"), np.memmap)
    raw = np.load(folder / "fog.npy")
    for s in (1, 5):
        got = files.read("fog", s)
        assert got.shape == (15, 3, 32, 32) and got.dtype == torch.float32
        want = torch.from_numpy(raw[(s - 1) * 20 + positions]).permute(0, 3, 1, 2) / 255
        assert torch.equal(got, want)
    assert Cifar10C.find(tmp_path / "elsewhere", positions, y, names, (1,)) is None


def test_cifar10c_reader_rejects_files_that_do_not_fit(tmp_path):
    write_cifar10c(tmp_path, ["fog"], n_per_severity=20)
    _, y = images(20, seed=3)
    every = np.arange(20)
    with pytest.raises(DataError, match="does not list the CIFAR-10 test labels"):
        Cifar10C.find(tmp_path, every, (y + 1) % 10, ["fog"], (1,))
    with pytest.raises(DataError, match="20 images per severity; the protocol evaluates test "
                                        "images up to position 30"):
        Cifar10C.find(tmp_path, np.arange(30), np.zeros(30, dtype=np.int64), ["fog"], (1,))
    np.save(tmp_path / "CIFAR-10-C" / "fog.npy", np.zeros((99, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match=r"fog.npy: expected \(100, 32, 32, 3\)"):
        Cifar10C.find(tmp_path, every, y, ["fog"], (1,))
    (tmp_path / "CIFAR-10-C" / "labels.npy").unlink()
    with pytest.raises(DataError, match="no labels.npy"):
        Cifar10C.find(tmp_path, every, y, ["fog"], (1,))


def test_present_cifar10c_files_replace_generated_corruptions(cifar_dir, skip_md5):
    plain = load_split(small(), cifar_dir)
    write_cifar10c(cifar_dir, ["fog"], n_per_severity=N_TEST, seed=2)  # the test set, corrupted
    split = load_split(small(), cifar_dir)
    assert split.corruption_files.names == ("fog",)
    assert split.fingerprint != plain.fingerprint  # records say which images were evaluated
    corrupted = CorruptedTestSet(split.x_test, seed=0, files=split.corruption_files)
    assert torch.equal(corrupted.get("fog", 2), split.corruption_files.read("fog", 2))
    generated = CorruptedTestSet(split.x_test, seed=0)
    assert torch.equal(corrupted.get("snow", 2), generated.get("snow", 2))
    assert not torch.equal(corrupted.get("fog", 2), generated.get("fog", 2))


@pytest.mark.integration
def test_teacher_cache_is_keyed_by_the_training_data_not_by_cifar10c(cifar_dir, skip_md5,
                                                                     tmp_path):
    from bench.train.teacher import teacher_checkpoint
    p = small()
    key = teacher_checkpoint(tmp_path / "cache", p, load_split(p, cifar_dir))
    write_cifar10c(cifar_dir, ["fog"], n_per_severity=N_TEST, seed=2)  # evaluation data only
    assert teacher_checkpoint(key.parents[1], p, load_split(p, cifar_dir)) == key
    batch = cifar_dir / "cifar-10-batches-py" / "data_batch_1"
    data = pickle.loads(batch.read_bytes())
    data["data"][0, 0] ^= 1  # one training pixel changed: another training set
    batch.write_bytes(pickle.dumps(data))
    assert teacher_checkpoint(key.parents[1], p, load_split(p, cifar_dir)) != key


def _cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=600, env={**os.environ, **env})


@pytest.mark.integration
def test_cli_missing_data_and_compile_on_cpu_get_one_line_and_exit_2(tmp_path):
    cases = [
        (["--data-dir", str(tmp_path)], "CIFAR-10 not found"),
        ([], "pass --data-dir DIR"),
        (["--data-dir", str(tmp_path), "--device", "cpu", "--compile"], "--compile is for CUDA"),
    ]
    for args, message in cases:
        proc = _cli("run", "--protocol", "cifar10", "--methods", "baseline", "-q",
                    "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"),
                    *args, KDBENCH_OFFLINE="1")
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert not any(tmp_path.rglob("*.json"))  # no record written


@pytest.mark.integration
def test_smoke_run_on_small_cifar10_files(tmp_path):
    data = tmp_path / "data"
    write_cifar10(data, n_train=300, n_test=50)
    write_cifar10c(data, ["gaussian_noise"], n_per_severity=50, seed=2)
    proc = _cli("run", "--protocol", "cifar10", "--smoke", "--data-dir", str(data),
                "--methods", "teacher,baseline,vanilla", "-q", "--workers", "1",
                "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
                KDBENCH_SKIP_CIFAR_MD5="1")
    assert proc.returncode == 0, proc.stderr
    assert "teacher: training resnet9 with the 'baseline' loss" in proc.stderr
    smoke = get_protocol("cifar10").for_smoke()
    for name in ("teacher", "baseline", "vanilla"):
        rec = read_record(tmp_path / "results" / "cifar10" / name / "seed-0.json")
        assert rec.smoke and rec.protocol_hash == smoke.hash and rec.training.epochs == 2
        assert list(rec.metrics.corruptions) == list(smoke.eval.corruptions)
        assert all(len(v) == 1 for v in rec.metrics.corruptions.values())  # severity 3 only
        assert rec.metrics.attacks.eps == "8/255"
        assert rec.provenance.corruptions_from_files == ["gaussian_noise"]  # the rest generated
    check = _cli("validate", "--allow-smoke", str(tmp_path / "results"))
    assert check.returncode == 0, check.stderr
