"""The generated AgeDB-DIR tree that the loader and cache tests share."""
import os
from pathlib import Path

import pytest

from helpers import first_rows_per_split, write_face_tree

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def real_agedb_rows(per_split: int = 10):
    """``per_split`` real rows per split of the shared ``agedb.csv`` (``$DIRLIB_DATA``, else
    ``../shared/data``) and True; without it, synthetic rows in the same format and False."""
    for root in (os.environ.get("DIRLIB_DATA"), SHARED):
        if root and (Path(root) / "agedb-dir" / "agedb.csv").exists():
            lines = (Path(root) / "agedb-dir" / "agedb.csv").read_text().splitlines()
            assert lines[0] == "age,path,split"
            return first_rows_per_split(lines, per_split), True
    return [f"{20 + i},AgeDB/{i}_Person_{20 + i}_m.jpg,{('train', 'val', 'test')[i % 3]}"
            for i in range(3 * per_split)], False


@pytest.fixture
def agedb_tree(tmp_path):
    """An AgeDB-DIR layout in ``tmp_path``: 10 rows per split with generated JPEGs at their paths.
    Returns ``(root, rows, rows_are_real)``."""
    rows, real = real_agedb_rows()
    write_face_tree(tmp_path / "agedb-dir", "agedb.csv", rows)
    return tmp_path, rows, real
