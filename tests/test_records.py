import json
import os

import pytest

from bench.errors import RecordError
from bench.records import Record, atomic_write_text, read_record, write_record
from bench.records.validate import check_record
from support import committed_record_path, kdbench, load_json


@pytest.fixture
def record(tmp_path):
    """A copy of a committed record at its proper place under a fresh results dir."""
    dst = tmp_path / "results" / "mnist5k" / "vanilla" / "seed-0.json"
    dst.parent.mkdir(parents=True)
    dst.write_text(committed_record_path("vanilla", 0).read_text())
    return dst


def _tamper(path, edit):
    data = load_json(path)
    edit(data)
    path.write_text(json.dumps(data))
    return path


def test_a_written_record_reads_back_equal(record, tmp_path):
    rec = read_record(record)
    out = write_record(rec, tmp_path / "again")
    assert read_record(out) == rec
    assert out.relative_to(tmp_path / "again").as_posix() == "mnist5k/vanilla/seed-0.json"


@pytest.mark.integration
def test_a_good_smoke_record_passes_only_when_smoke_is_allowed(good_record):
    rec, problems = check_record(good_record, allow_smoke=True)
    assert problems == [] and isinstance(rec, Record)
    _, problems = check_record(good_record)
    assert any("never a leaderboard result" in p for p in problems)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["metrics"].__setitem__("clean_acc", 140.0), r"metrics.clean_acc: .*less than or equal to 100"),
    (lambda d: d["metrics"].pop("pgd_acc"), r"metrics.pgd_acc: Field required"),
    (lambda d: d.__setitem__("surprise", 1), r"surprise: Extra inputs are not permitted"),
    (lambda d: d["metrics"].__setitem__("robust_acc", 100.0), r"robust_acc .* exceeds"),
    (lambda d: d["metrics"].__setitem__("corruptions_acc", 1.0), r"not the mean"),
    (lambda d: d["metrics"]["efficiency"].__setitem__("gpu_absent_reason", None), r"GPU timings or the reason"),
    (lambda d: d["training"].__setitem__("final_epoch_loss", float("nan")), r"not finite"),
    (lambda d: d.__setitem__("schema_version", 99), r"schema_version 99 is not supported"),
])
def test_schema_rejections_name_the_file_and_the_field(record, edit, message):
    _tamper(record, edit)
    with pytest.raises(RecordError, match=message) as e:
        read_record(record)
    assert str(record) in str(e.value)


def test_malformed_json_is_reported_with_its_line(record):
    record.write_text('{"schema_version": 1,\n  "protocol": ')
    with pytest.raises(RecordError, match=r"not valid JSON: .* line 2"):
        read_record(record)


@pytest.mark.integration
def test_protocol_hash_and_layout_are_checked(good_record):
    _tamper(good_record, lambda d: d.__setitem__("protocol_hash", "0" * 16))
    _, problems = check_record(good_record, allow_smoke=True)
    assert any("does not match the registered 'mnist5k' protocol" in p for p in problems)

    moved = good_record.parent.parent / "baseline" / "seed-0.json"
    moved.parent.mkdir()
    good_record.rename(moved)
    _, problems = check_record(moved, allow_smoke=True)
    assert any("must live at <results-dir>/mnist5k/vanilla/seed-0.json" in p for p in problems)


@pytest.mark.integration
def test_validate_cli_exits_nonzero_with_one_line_per_bad_file(good_record):
    ok = kdbench("validate", "--allow-smoke", str(good_record.parent.parent))
    assert ok.returncode == 0, ok.stderr
    assert "1 valid, 0 invalid" in ok.stdout
    _tamper(good_record, lambda d: d["metrics"].__setitem__("fgsm_acc", -3))
    bad = kdbench("validate", "--allow-smoke", str(good_record.parent.parent))
    assert bad.returncode == 1
    assert f"invalid {good_record}: metrics.fgsm_acc" in bad.stderr.replace("\n", " ")
    assert "Traceback" not in bad.stderr


def test_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp files left behind


def test_unwritable_results_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results directory should be")
    with pytest.raises(RecordError, match="cannot write to .*results/mnist5k: .*choose another"):
        atomic_write_text(blocker / "mnist5k" / "r.json", "x")


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    atomic_write_text(target, "complete")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(RecordError, match="No space left on device; nothing was written"):
        atomic_write_text(target, "partial")
    assert target.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
