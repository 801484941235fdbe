import os

import pytest
import torch

from bench.checkpoints import load_weights, save_weights
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
        load_checkpoint(path)
    assert not marker.exists()


def test_checkpoints_round_trip_and_hash_like_sha256sum(tmp_path):
    state = {"state_dict": {"w": torch.arange(4.0)}, "key": {"seed": 1}}
    sha = save_checkpoint(state, tmp_path / "a.pt")
    assert sha == file_sha256(tmp_path / "a.pt")
    assert save_checkpoint(state, tmp_path / "b.pt") == sha  # no timestamps inside
    loaded = load_checkpoint(tmp_path / "a.pt")
    assert torch.equal(loaded["state_dict"]["w"], state["state_dict"]["w"])
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["a.pt", "b.pt"]
