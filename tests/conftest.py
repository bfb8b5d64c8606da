import numpy as np
import pytest
from ase.build import molecule

from torch_models import TinySchNet, pymotor_metadata, save_model


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    return save_model(TinySchNet(seed=0), path, metadata=pymotor_metadata())


@pytest.fixture
def ethanol():
    a = molecule("CH3CH2OH")
    a.pbc = False
    return a
