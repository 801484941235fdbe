"""Per-example evidence: packing, the schema round trip, the checks that tie the bits to the
accuracies stored beside them, and the evaluation suite writing it."""

import base64
import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from bench.errors import RecordError
from bench.progress import Reporter
from bench.records import Record, read_record
from bench.records.bits import pack, unpack
from bench.records.validate import check_record
from support import MNIST5K, correct, evidence_record, model_record, write_record


@pytest.mark.parametrize("n", [1, 7, 8, 9, 1000, 1003])
def test_bits_round_trip_and_match_numpy_packbits(n):
    mask = np.random.default_rng(n).random(n) < 0.6
    text = pack(mask)
    assert base64.b64decode(text) == np.packbits(mask).tobytes()
    assert (unpack(text, n) == mask).all() and unpack(text, n).dtype == bool


def test_unpack_rejects_wrong_lengths_padding_and_text():
    text = pack(np.ones(10, dtype=bool))
    with pytest.raises(ValueError, match="holds 2 bytes, but 20 examples pack into 3"):
        unpack(text, 20)
    with pytest.raises(ValueError, match="padding bits"):
        unpack(text, 9)  # bit 10 is set: the record was packed from 10 examples, not 9
    with pytest.raises(ValueError, match="not base64"):
        unpack("not base64!", 8)


def test_the_schema_round_trips_packed_bits(tmp_path):
    rng = np.random.default_rng(0)
    clean = correct(1000, 960, rng)
    d = evidence_record("m", 0, clean, clean & correct(1000, 700, rng), correct(1000, 300, rng),
                        {"gaussian_noise": [correct(1000, k, rng) for k in (900, 850)]},
                        autoattack=correct(1000, 250, rng))
    path = write_record(tmp_path, d)
    rec = read_record(path)
    again = Record.model_validate_json(rec.model_dump_json())
    assert again == rec
    masks = again.metrics.evidence.masks()
    assert (masks["clean"] == clean).all()
    assert set(masks) == {"clean", "fgsm", "pgd", "autoattack", "robust", "gaussian_noise/1",
                          "gaussian_noise/2"}
    assert 100 * masks["robust"].mean() == rec.metrics.robust_acc


def _tampered(tmp_path, edit) -> str:
    d = model_record("m", 0, {"clean": 95.0, "fgsm": 60.0, "pgd": 40.0, "noise": 80.0},
                     np.random.default_rng(1))
    edit(d)
    path = write_record(tmp_path, d)
    with pytest.raises(RecordError) as e:
        read_record(path)
    _, problems = check_record(path)  # what `kdbench validate` reports
    assert problems == [str(e.value)]
    return str(e.value)


def _flip(d, key, i=0):
    ev = d["metrics"]["evidence"]
    bits = unpack(ev[key], ev["n"])
    bits[i] = ~bits[i]
    ev[key] = pack(bits)


def test_validate_rejects_bits_whose_mean_disagrees_with_the_stored_accuracy(tmp_path):
    msg = _tampered(tmp_path, lambda d: d["metrics"].__setitem__("pgd_acc", 40.1))
    assert "evidence.pgd: 400 of 1000 examples correct is 40.0000 %, but pgd_acc is 40.1" in msg
    msg = _tampered(tmp_path, lambda d: _flip(d, "fgsm"))
    assert "evidence.fgsm:" in msg and "but fgsm_acc is 60.0" in msg


def _corrupt_severity_2(d):
    d["metrics"]["corruptions"]["gaussian_noise"][1] += 0.1
    d["metrics"]["corruptions_acc"] = round(sum(d["metrics"]["corruptions"]["gaussian_noise"]) / 2,
                                            4)


def test_validate_names_the_corruption_whose_bits_disagree(tmp_path):
    msg = _tampered(tmp_path, _corrupt_severity_2)
    assert "evidence.gaussian_noise/2:" in msg and "but corruptions['gaussian_noise'][1] is" in msg


def _robust_not_worst(d):
    ev = d["metrics"]["evidence"]
    ev["robust"], d["metrics"]["robust_acc"] = ev["pgd"], d["metrics"]["pgd_acc"]


def test_validate_rejects_inconsistent_evidence(tmp_path):
    assert "evidence.clean: holds 125 bytes, but 990 examples pack into 124" in _tampered(
        tmp_path, lambda d: d["metrics"]["evidence"].__setitem__("n", 990))
    assert "robust is the per-example worst case" in _tampered(tmp_path, _robust_not_worst)
    assert "must name the corruptions" in _tampered(
        tmp_path, lambda d: d["metrics"]["evidence"]["corruptions"]["gaussian_noise"].pop())
    assert "evidence.autoattack and autoattack_acc go together" in _tampered(
        tmp_path, lambda d: d["metrics"]["evidence"].__setitem__(
            "autoattack", d["metrics"]["evidence"]["pgd"]))


def test_validate_checks_the_length_against_the_protocols_test_set(tmp_path):
    rng = np.random.default_rng(2)
    n = 200
    d = evidence_record("m", 0, correct(n, 190, rng), correct(n, 100, rng), correct(n, 50, rng),
                        {"gaussian_noise": [correct(n, 150, rng)]})
    path = write_record(tmp_path, d)
    _, problems = check_record(path)
    assert problems == [f"{path}: metrics.evidence.n is 200, but the 'mnist5k' protocol tests "
                        "1000 examples: the per-example evidence must cover exactly its test set"]
    smoke = write_record(tmp_path / "smoke", {**d, "smoke": True,
                                              "protocol_hash": MNIST5K.for_smoke().hash})
    assert check_record(smoke, allow_smoke=True)[1] == []  # --smoke tests 200


def test_records_without_evidence_stay_readable(tmp_path):
    d = model_record("m", 0, {"clean": 95.0, "fgsm": 60.0, "pgd": 40.0, "noise": 80.0},
                     np.random.default_rng(3))
    del d["metrics"]["evidence"]
    for key in ("job_key", "harness_version", "arch", "sources", "teacher_key"):
        del d[key]
    d["schema_version"] = 1
    assert read_record(write_record(tmp_path, d)).metrics.evidence is None


# -- the suite writes it -------------------------------------------------------------------------
class _Guess(nn.Module):
    """A tiny classifier whose answers depend on the input (so attacks and noise change some)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_evaluate_packs_every_mask_its_accuracies_come_from():
    from bench.eval.attacks import CleanAccuracy, WhiteBoxAttacks
    from bench.eval.corruptions import Corruptions
    from bench.eval.suite import evaluate
    p = MNIST5K.for_smoke()
    p = dataclasses.replace(p, eval=dataclasses.replace(p.eval, corruptions=("gaussian_noise",
                                                                             "contrast"),
                                                         severities=(1, 5),
                                                         corruption_suite="cifar10-c"))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 1, 28, 28, generator=g), torch.randint(0, 10, (40,), generator=g)
    model = _Guess()
    y[:20] = model(x[:20]).argmax(1)  # half of them right on clean inputs
    metrics = evaluate(model, p, x, y, "cpu", Reporter(quiet=True),
                       evaluators=(CleanAccuracy(), WhiteBoxAttacks(), Corruptions()))
    ev = metrics["evidence"]
    assert ev["n"] == 40 and list(ev["corruptions"]) == ["gaussian_noise", "contrast"]
    unpacked = {k: unpack(ev[k], 40) for k in ("clean", "fgsm", "pgd", "robust")}
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).numpy()
        contrast5 = (model(metrics_input(p, x, "contrast", 5)).argmax(1) == y).numpy()
    assert (unpacked["clean"] == clean).all()
    assert (unpack(ev["corruptions"]["contrast"][1], 40) == contrast5).all()
    assert (unpacked["robust"] == (unpacked["clean"] & unpacked["fgsm"] & unpacked["pgd"])).all()
    for key in ("clean", "fgsm", "pgd", "robust"):
        assert 100 * unpacked[key].mean() == pytest.approx(metrics[f"{key}_acc"], abs=5e-5)
    json.dumps(ev)  # plain JSON


def metrics_input(protocol, x, name, severity):
    from attacks import corruptions
    return corruptions.apply(name, x, severity, protocol.eval.seed)
