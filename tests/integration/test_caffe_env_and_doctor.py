"""`caffepipe doctor` on the environment envs/setup.sh set up: the real caffe binary, pycaffe and the libraries."""
import pytest

from caffepipe.core import doctor

pytestmark = pytest.mark.integration


def test_doctor_passes_on_the_set_up_environment(capsys) -> None:
    assert doctor.main([]) == 0
    out = capsys.readouterr().out
    for name in ("caffe", "pycaffe", "protobuf", "lmdb", "leveldb", "blas", "dvc", "snakemake", "npm", "graphviz"):
        assert f"ok     {name}" in out
