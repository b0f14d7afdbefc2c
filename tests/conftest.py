import fcntl
import os
import tempfile
from pathlib import Path

import pytest
import torch

# one thread: no OpenMP oversubscription when the machine is busy, and bit-stable reductions
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_dir():
    """The real shared data. Unset DIRLIB_DATA skips real-data tests locally, but fails in CI."""
    d = os.environ.get("DIRLIB_DATA")
    if not d or not Path(d).is_dir():
        msg = ("real-data test needs DIRLIB_DATA (e.g. ../shared/data); "
               f"got {d!r}")
        if os.environ.get("CI"):
            pytest.fail(msg + " -- CI must run the real-data tests")
        pytest.skip(msg)
    return Path(d)


@pytest.fixture
def one_ray_node():
    """One local Ray node at a time across the test workers (``make test`` runs two, with
    pytest-xdist): a Ray test holds this lock while its node runs."""
    with open(Path(tempfile.gettempdir()) / "dirlib-tests-ray.lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
