"""Weight records and the one model resolver (issue #11: weights are records, one loader)."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.errors import CheckpointError, ConfigError, MissingDependencyError, ModelNotFoundError
from audiozoo.hub import file_sha256, package_file, save_pretrained
from audiozoo.registry import WEIGHT_SOURCES, WeightSet, model_info, weight_record, weight_set, weights_dir
from audiozoo.resolve import resolve_model

WEIGHT_SETS = audiozoo.list_models(with_weights=True)


@pytest.mark.parametrize("name", WEIGHT_SETS)
def test_every_weight_set_is_a_complete_record_with_a_matching_hash(name):
    ws = weight_set(name)
    assert ws.source in WEIGHT_SOURCES and ws.description and len(ws.sha256) == 64
    if ws.source == "shipped":
        assert ws.recipe and ws.commit, f"{name}: a shipped weight set names the recipe and commit that made it"
        assert file_sha256(weights_dir(name) / "model.safetensors") == ws.sha256
    elif ws.source == "package":
        try:
            package_file(ws.location, ws.sha256)
        except MissingDependencyError as e:
            pytest.skip(str(e))
    rec = weight_record(name)
    assert rec["input"]["sample_rate"] > 0 and rec["family"] == model_info(name).family


def test_input_is_derived_from_the_weight_sets_config_not_written_by_hand():
    # the architecture's canonical config has 128 mels; the sonic-pi weight set was trained with 64
    assert model_info("ast_tiny").input["features"] == "(B, 128, L)"
    assert weight_record("ast_tiny.sonicpi_family")["input"]["features"] == "(B, 64, L)"
    assert weight_record("ast_tiny.sonicpi_family")["labels"][0] == "ambient"


def test_package_file_refuses_wrong_pins_and_hashes():
    ws = weight_set("basic_pitch_nmp.icassp_2022")
    pytest.importorskip("onnx")
    dist, rest = ws.location.split("==", 1)
    with pytest.raises(MissingDependencyError, match="pinned to 9.9.9"):
        package_file(f"{dist}==9.9.9:{rest.split(':', 1)[1]}")
    with pytest.raises(CheckpointError, match="differs from the pinned"):
        package_file(ws.location, "0" * 64)
    with pytest.raises(MissingDependencyError, match="not installed"):
        package_file("no-such-dist-xyz==1.0:a/b")


def test_weight_set_records_are_validated():
    with pytest.raises(ConfigError, match="weight source"):
        WeightSet("x", source="ftp")
    with pytest.raises(ConfigError, match="needs a loader"):
        WeightSet("x", source="package", location="a==1:b")


def _tiny_ast():
    return audiozoo.create_model("ast_tiny", **model_info("ast_tiny").tiny).eval()


def test_resolve_every_kind_of_spec(tmp_path):
    m = _tiny_ast()
    assert resolve_model(m, "classify") is m
    d = save_pretrained(m, tmp_path / "ck", metadata={"labels": list(range(10))})
    x = torch.randn(1, 32, 48)
    with torch.no_grad():
        ref = m(x)
        assert torch.equal(resolve_model(d, "classify")(x), ref)                       # folder
        assert torch.equal(resolve_model(d / "model.safetensors")(x), ref)              # file + sibling config
        # a bare file in another layout: the architecture is named (the converter maps official keys)
        lone = tmp_path / "lone.safetensors"
        lone.write_bytes((d / "model.safetensors").read_bytes())
        with pytest.raises(ConfigError, match="arch="):
            resolve_model(lone)
    assert type(resolve_model("ast_tiny.fsdd_digits", "classify")).__name__ == "AST"  # weight set
    assert resolve_model("basic_pitch_nmp", "transcribe", trained=True).pretrained_metadata["source"] == "package"
    with pytest.raises(ConfigError, match="untrained architecture"):
        resolve_model("ast_tiny", "classify", trained=True)
    with pytest.raises(ConfigError, match="this needs vocoder"):
        resolve_model("ast_tiny.fsdd_digits", "vocoder")
    with pytest.raises(ModelNotFoundError, match="no model named"):
        resolve_model("no_such_model")
    with pytest.raises(ModelNotFoundError, match="no such checkpoint"):
        resolve_model(str(tmp_path / "missing" / "x.pt"))


def test_composites_and_builtins():
    gl = resolve_model("griffinlim:4", "vocoder")
    assert gl.n_iter == 4 and gl.family == "vocoder"
    ref = resolve_model("apnet.freev_speech16k+griffinlim:3", "vocoder")
    assert type(ref).__name__ == "GriffinLimRefiner" and ref.n_iter == 3
    with pytest.raises(ConfigError, match="predicts no spectrum"):
        resolve_model("hifigan_v3+griffinlim", "vocoder")
    with pytest.raises(ConfigError, match="cannot compose"):
        resolve_model("apnet+ast_tiny", "vocoder")
    with pytest.raises(ConfigError, match="bad Griffin-Lim spec"):
        resolve_model("griffinlim:x", "vocoder")
