"""submit, validate and verify on a tiny registered protocol, run in this process."""

import dataclasses
import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from bench.cli import app
from bench.protocols import PROTOCOLS, get_protocol
from bench.records import read_record
from support import load_json

pytestmark = pytest.mark.integration

METHOD = "vanilla"


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    """Records of teacher and vanilla (3 seeds) under `tiny`: mnist5k at smoke size, not smoke."""
    smoke = get_protocol("mnist5k").for_smoke()
    tiny = dataclasses.replace(smoke, name="tiny", smoke=False, seeds=(0, 1, 2))
    root = tmp_path_factory.mktemp("tiny")
    deterministic = torch.are_deterministic_algorithms_enabled()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(PROTOCOLS, "tiny", lambda: tiny)
        result = CliRunner().invoke(app, [
            "run", "--protocol", "tiny", "--methods", f"teacher,{METHOD}", "--workers", "0",
            "-q", "--results-dir", str(root / "results"), "--cache-dir", str(root / "cache")])
        assert result.exit_code == 0, result.output
        yield root / "results"
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture
def results(tiny_results, tmp_path, monkeypatch):
    """A private copy of the tiny results, with `tiny` registered."""
    monkeypatch.setitem(PROTOCOLS, "tiny", PROTOCOLS.get("tiny") or (lambda: dataclasses.replace(
        get_protocol("mnist5k").for_smoke(), name="tiny", smoke=False, seeds=(0, 1, 2))))
    dst = tmp_path / "results"
    shutil.copytree(tiny_results, dst)
    return dst


def cli(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def submit(results, method=METHOD):
    return cli("submit", "--method", method, "--protocol", "tiny", "--results-dir", results)


def test_submit_writes_an_entry_that_aggregates_every_seed(results):
    out = submit(results)
    assert out.exit_code == 0, out.output
    entry = load_json(results / "tiny" / METHOD / "entry.json")
    records = [load_json(results / "tiny" / METHOD / f"seed-{s}.json") for s in (0, 1, 2)]
    clean = [r["metrics"]["clean_acc"] for r in records]
    assert entry["seeds"] == [0, 1, 2]
    assert entry["metrics"]["clean_acc"]["values"] == clean
    assert entry["metrics"]["clean_acc"]["mean"] == pytest.approx(sum(clean) / 3, abs=1e-3)
    assert entry["checkpoints"] == {str(r["seed"]): r["checkpoint"]["sha256"] for r in records}
    for name in ("methods/vanilla.py", "entry.json", "seed-2.json", "seed-2.pt"):
        assert name in out.output
    assert cli("validate", results).exit_code == 0


def test_submit_lists_what_is_missing_and_what_to_run(results):
    (results / "tiny" / METHOD / "seed-2.json").unlink()
    out = submit(results)
    assert out.exit_code == 1
    assert "seed 2: no record at" in out.output
    assert f"kdbench run --protocol tiny --methods {METHOD} --seeds 2" in out.output
    assert not (results / "tiny" / METHOD / "entry.json").exists()


def test_submit_refuses_a_checkpoint_that_does_not_match(results):
    ckpt = results / "tiny" / METHOD / "seed-1.pt"
    ckpt.write_bytes(ckpt.read_bytes() + b"tampered")
    out = submit(results)
    assert out.exit_code == 1 and "does not match its recorded sha256" in out.output
    assert "--seeds 1" in out.output


def test_submit_refuses_records_made_by_older_code(results, monkeypatch):
    from support import changed_file
    changed_file(monkeypatch, "methods/losses.py")  # vanilla's loss lives there
    out = submit(results)
    assert out.exit_code == 1
    assert "methods/losses.py changed since the record was made" in out.output


def test_submit_refuses_another_protocol_definition(results):
    path = results / "tiny" / METHOD / "seed-0.json"
    data = load_json(path)
    data["protocol_hash"] = "0" * 16
    path.write_text(json.dumps(data))
    out = submit(results)
    assert out.exit_code == 1 and "was made under another definition of tiny" in out.output


def test_validate_rejects_an_entry_that_disagrees_with_its_seeds(results):
    assert submit(results).exit_code == 0
    path = results / "tiny" / METHOD / "entry.json"
    entry = load_json(path)
    entry["metrics"]["pgd_acc"]["mean"] += 10
    path.write_text(json.dumps(entry))
    out = cli("validate", results)
    assert out.exit_code == 1
    assert "pgd_acc" in out.output and "does not match the seed records" in out.output


def test_validate_rejects_one_result_filed_under_two_names(results):
    src = results / "tiny" / METHOD
    dst = results / "tiny" / "copycat"
    dst.mkdir()
    data = load_json(src / "seed-0.json")
    data.update(method="copycat", checkpoint={**data["checkpoint"], "file": "tiny/copycat/seed-0.pt"})
    (dst / "seed-0.json").write_text(json.dumps(data))
    shutil.copy(src / "seed-0.pt", dst / "seed-0.pt")
    out = cli("validate", results)
    assert out.exit_code == 1 and "one result filed under two names" in out.output


def test_verify_marks_a_matching_record_verified(results):
    path = results / "tiny" / METHOD / "seed-1.json"
    out = cli("verify", path)
    assert out.exit_code == 0, out.output
    assert "difference 0.00 pts" in out.output
    v = read_record(path).verification
    assert v.ok and v.clean_acc == read_record(path).metrics.clean_acc


def test_verify_reports_a_mismatch_with_both_numbers(results):
    path = results / "tiny" / METHOD / "seed-1.json"
    data = load_json(path)
    real = data["metrics"]["clean_acc"]
    data["metrics"]["clean_acc"] = real + 5 if real <= 95 else real - 5
    data["metrics"]["robust_acc"] = min(data["metrics"]["robust_acc"], data["metrics"]["clean_acc"])
    data["metrics"].pop("evidence")  # its bits would contradict the edited accuracy
    path.write_text(json.dumps(data))
    out = cli("verify", path)
    assert out.exit_code == 1
    assert f"re-evaluated {real:.2f}%" in out.output and "mismatch" in out.output
    assert read_record(path).verification.ok is False


def test_verify_refuses_a_checkpoint_that_is_not_the_evaluated_model(results):
    ckpt = results / "tiny" / METHOD / "seed-0.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:-10])
    out = cli("verify", results / "tiny" / METHOD / "seed-0.json")
    assert out.exit_code != 0
    assert "does not match its recorded sha256" in str(out.exception)


def _set_data(path, fingerprint):
    data = load_json(path)
    data["provenance"]["data_fingerprint"] = fingerprint
    path.write_text(json.dumps(data))


def test_validate_rejects_records_of_one_protocol_made_on_other_data(results):
    odd = results / "tiny" / METHOD / "seed-1.json"
    _set_data(odd, "0" * 16)
    out = cli("validate", results)
    assert out.exit_code == 1
    assert f"{odd}: data_fingerprint {'0' * 16} differs from the" in out.output
    assert "evaluated on other data" in out.output
    assert out.output.count("differs from the") == 1  # the three records that agree are fine


def test_submit_refuses_seeds_evaluated_on_other_data(results):
    _set_data(results / "tiny" / METHOD / "seed-2.json", "0" * 16)
    out = submit(results)
    assert out.exit_code == 1 and "seed 2:" in out.output and "other data" in out.output
    assert f"--methods {METHOD} --seeds 2 " in out.output
    assert not (results / "tiny" / METHOD / "entry.json").exists()
