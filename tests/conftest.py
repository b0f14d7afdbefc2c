import os
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
