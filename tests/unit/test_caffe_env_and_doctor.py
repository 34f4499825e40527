import pytest

from caffepipe.core import caffe_env

from caffepipe.core import doctor
from caffepipe.core.errors import CaffepipeError


def test_a_caffe_root_without_caffe_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(caffe_env.ROOT_ENV, str(tmp_path))
    with pytest.raises(CaffepipeError, match="holds no bin/caffe"):
        caffe_env.caffe_root()


def test_blas_threads_are_capped_for_every_blas() -> None:
    three = caffe_env.blas_environment(3)
    assert {key: three[key] for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")} == \
        {"OPENBLAS_NUM_THREADS": "3", "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}
    assert caffe_env.blas_environment(0)["OPENBLAS_NUM_THREADS"] == "1"


def test_mkl_runs_reproducibly_with_exactly_the_threads_asked() -> None:
    assert caffe_env.blas_environment(2)["MKL_THREADING_LAYER"] == "GNU"   # the layer the build ships
    assert caffe_env.blas_environment(1)["MKL_THREADING_LAYER"] == "SEQUENTIAL"
    for threads in (1, 2):
        assert caffe_env.blas_environment(threads)["MKL_DYNAMIC"] == "FALSE"
        assert caffe_env.blas_environment(threads)["MKL_CBWR"] == "AUTO"


def test_doctor_reports_every_broken_piece_and_exits_non_zero(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(caffe_env.ROOT_ENV, str(tmp_path / "empty-cache"))
    with pytest.raises(CaffepipeError, match="caffe: .*holds no bin/caffe"):
        doctor.main([])
    out = capsys.readouterr().out
    assert "BROKEN caffe" in out and "BROKEN pycaffe" in out
    assert "ok     dvc" in out and "ok     snakemake" in out


def test_doctor_says_graphviz_is_missing_without_failing(tmp_path, monkeypatch, capsys) -> None:
    """Graphviz is optional (only the net diagrams need it): MISSING with its fix, and doctor still exits 0."""
    monkeypatch.setenv("PATH", str(tmp_path))
    finding = doctor.check_graphviz()
    assert (finding.ok, finding.optional) == (False, True)
    assert "apt-get install graphviz" in finding.fix
    monkeypatch.setattr(doctor, "CHECKS", (doctor.check_graphviz,))
    assert doctor.main([]) == 0
    out = capsys.readouterr().out
    assert "MISSING graphviz" in out and "optional, missing: graphviz" in out
