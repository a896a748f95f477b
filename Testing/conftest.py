"""Shared fixtures: paths to bundled samples and ../shared data, and randomly initialised weights."""

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
SHARED = REPO.parent / "shared" / "data"


def dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def shared_path(*parts) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} not available")
    return path


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """``random_weights(task, arch)`` -> path of a state dict of a randomly initialised network."""
    import torch

    from LungSegLib.networks import build_network, default_card

    cache = {}

    def make(task, arch="unet"):
        if (task, arch) not in cache:
            torch.manual_seed(0)
            path = tmp_path_factory.mktemp("weights") / f"{task}_{arch}.pt"
            torch.save(build_network(default_card(task, arch)).state_dict(), path)
            cache[task, arch] = path
        return cache[task, arch]

    return make
