import copy

import pytest
import yaml
from hypothesis import given, strategies as st

from caffepipe.core.errors import CaffepipeError
from caffepipe.pipeline.params import load_params, params_schema, validate_params
from tests.conftest import REPO, default_params


def test_the_repository_params_are_valid() -> None:
    assert load_params(REPO / "params.yaml")["train"]["max_iter"] == 10000


def test_every_section_is_closed_and_every_key_documented_by_a_type() -> None:
    schema = params_schema()
    assert schema["additionalProperties"] is False
    for name, section in schema["properties"].items():
        assert section["additionalProperties"] is False, name
        assert set(section["required"]) == set(section["properties"]), name


def test_unknown_key_is_named_with_its_path() -> None:
    params = default_params()
    params["train"]["base_lr_typo"] = 0.1
    with pytest.raises(CaffepipeError, match=r"unknown key train\.base_lr_typo"):
        validate_params(params)


def test_unknown_section_is_named() -> None:
    params = default_params()
    params["trian"] = {}
    with pytest.raises(CaffepipeError, match=r"unknown key trian"):
        validate_params(params)


def test_wrong_type_is_named_with_its_path() -> None:
    params = default_params()
    params["netgen"]["train_batch_size"] = "64"
    with pytest.raises(CaffepipeError, match=r"netgen\.train_batch_size: '64' is not of type 'integer'"):
        validate_params(params)


def test_missing_section_is_an_error() -> None:
    params = default_params()
    del params["fetch"]
    with pytest.raises(CaffepipeError, match="'fetch' is a required property"):
        validate_params(params)


def test_missing_file_and_bad_yaml_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(CaffepipeError, match="no such params file"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(CaffepipeError, match="not valid YAML at line"):
        load_params(bad)
    binary = tmp_path / "binary.yaml"
    binary.write_text("train: x\x00y\n")       # PyYAML's message for this one spans two lines
    with pytest.raises(CaffepipeError, match="not valid YAML") as raised:
        load_params(binary)
    assert "\n" not in str(raised.value)


@given(section=st.sampled_from(sorted(default_params())), junk=st.text(min_size=1, max_size=12))
def test_any_extra_key_in_any_section_is_rejected(section: str, junk: str) -> None:
    params = copy.deepcopy(default_params())
    if junk in params[section]:
        return
    params[section][junk] = 1
    with pytest.raises(CaffepipeError, match="unknown key"):
        validate_params(params)


def test_round_trip_of_the_file_keeps_it_valid(tmp_path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(default_params()))
    assert load_params(path) == default_params()


@pytest.mark.parametrize("value", [None, False, "HEAD", "main~2", "v1.0"])
def test_report_baseline_is_a_revision_null_or_false(value) -> None:
    params = default_params()
    params["report"]["baseline"] = value
    assert validate_params(params)["report"]["baseline"] == value


@pytest.mark.parametrize("value", [True, "", 3])
def test_report_baseline_rejects_anything_else_naming_the_key(value) -> None:
    params = default_params()
    params["report"]["baseline"] = value
    with pytest.raises(CaffepipeError, match=r"report\.baseline"):
        validate_params(params)


@pytest.mark.parametrize("key,value,accepted", [
    ("dataset", "cifar10", True),
    ("url", "file:///data/cifar-10-binary.tar.gz", True),
    ("url", "https://example.org/cifar-10-binary.tar.gz", True),
    ("url", "/data/cifar-10-binary.tar.gz", False),        # a folder or file path belongs in local_dir
    ("cifar10_sha256", "ab" * 32, True),
    ("cifar10_sha256", "AB" * 32, False),
    ("cifar10_sha256", "ab" * 31, False),
])
def test_the_cifar10_fetch_keys(key: str, value: str, accepted: bool) -> None:
    params = default_params()
    params["fetch"][key] = value
    if accepted:
        validate_params(params)
    else:
        with pytest.raises(CaffepipeError, match=rf"fetch\.{key}"):
            validate_params(params)
