"""Registry and hub behaviour: names, errors, pretrained sources, no pickles."""

from __future__ import annotations

import json

import pytest
import torch

import audiozoo
from audiozoo.errors import CheckpointError, ConfigError, ModelNotFoundError
from audiozoo.hub import load_state_dict, save_pretrained


def test_list_models_by_family_and_pattern():
    assert "ast_base_p16" in audiozoo.list_models("classify")
    assert audiozoo.list_models("ast_*") == sorted(n for n in audiozoo.list_models() if n.startswith("ast_"))
    assert audiozoo.list_models("no_such_model_xyz") == []


def test_model_info_fields():
    info = audiozoo.model_info("ast_base_p16")
    assert info.params == 86_594_063 and info.arxiv == "2104.01778" and info.input["sample_rate"] == 16000


def test_unknown_model_and_override_errors():
    with pytest.raises(ModelNotFoundError, match="no model named"):
        audiozoo.create_model("ast_huge_p99")
    with pytest.raises(ConfigError, match="no field"):
        audiozoo.create_model("ast_tiny", n_layers=3)
    with pytest.raises(ModelNotFoundError, match="weight set"):
        audiozoo.create_model("ast_tiny.not_a_tag")


def test_from_pretrained_refuses_pickles_and_mismatches(tmp_path):
    m = audiozoo.create_model("ast_tiny", **audiozoo.model_info("ast_tiny").tiny)
    torch.save(m.state_dict(), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="only .safetensors"):
        load_state_dict(tmp_path / "w.pt")
    d = save_pretrained(m, tmp_path / "ck")
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["model_name"] == "ast_tiny" and cfg["config"]["embed_dim"] == 32
    with pytest.raises(CheckpointError, match="shape mismatch|does not fit"):
        audiozoo.create_model("ast_tiny", pretrained=d / "model.safetensors", embed_dim=64, num_heads=2,
                              **{k: v for k, v in audiozoo.model_info("ast_tiny").tiny.items()
                                 if k not in ("embed_dim", "num_heads")})
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        audiozoo.create_model("ast_tiny", pretrained=d)
