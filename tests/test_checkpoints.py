import os

import pytest
import torch

from bench.checkpoints import (load_training_state, load_weights, save_training_state,
                               save_weights)
from bench.files import file_sha256
from bench.errors import KdbenchError


class Payload:
    """Unpickling this runs code: what a malicious checkpoint would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_carries_code_is_refused_not_run(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "extra": Payload(marker)}, path)
    with pytest.raises(KdbenchError, match="not a loadable kdbench checkpoint"):
        load_weights(path)
    with pytest.raises(KdbenchError, match="not a loadable kdbench checkpoint"):
        load_training_state(path)
    assert not marker.exists()


def test_weights_round_trip_and_hash_like_sha256sum(tmp_path):
    weights, meta = {"w": torch.arange(4.0)}, {"job": {"seed": 1}}
    sha = save_weights(tmp_path / "a.pt", weights, meta)
    assert sha == file_sha256(tmp_path / "a.pt")
    assert save_weights(tmp_path / "b.pt", weights, meta) == sha  # no timestamps inside
    loaded, loaded_meta = load_weights(tmp_path / "a.pt")
    assert torch.equal(loaded["w"], weights["w"]) and loaded_meta == meta
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["a.pt", "b.pt"]  # no temp files


def test_a_training_state_is_not_mistaken_for_weights(tmp_path):
    save_training_state(tmp_path / "s.pt", {"epoch": 3, "model": {"w": torch.zeros(1)}})
    assert load_training_state(tmp_path / "s.pt")["epoch"] == 3
    with pytest.raises(KdbenchError, match="not a kdbench weights file"):
        load_weights(tmp_path / "s.pt")
