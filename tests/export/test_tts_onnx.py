"""ONNX export of the acoustic TTS models: FastSpeech, FastSpeech 2 and DelightfulTTS export their whole inference
(text ids -> durations -> length regulator -> mel) with the number of frames decided inside the graph; Transformer
TTS exports its encoder only (its decoder is an autoregressive loop that stops on data)."""

from __future__ import annotations

import pytest
import torch

from audiozoo import create_model, model_info
from audiozoo.errors import ConfigError
from audiozoo.export import check_onnx, export_checked, export_spec
from audiozoo.resolve import resolve_model

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

# measured max abs diffs (log-mel units, values ~ -11..2): 4.8e-6 (fastspeech2_small.piper_joe), 6.2e-6
# (fastspeech_small.piper_joe), 4.3e-6 (delightful_tts_small.piper_joe); a frame-count mismatch would be a shape
# error, not a small difference
ATOL = 1e-4


@pytest.mark.parity
@pytest.mark.parametrize("spec", ["fastspeech_small.piper_joe", "fastspeech2_small.piper_joe",
                                  "delightful_tts_small.piper_joe"])
def test_non_autoregressive_tts_exports_with_data_dependent_frames(spec, tmp_path):
    model = resolve_model(spec, "tts", trained=True).eval()
    ex = export_spec(model, length=20)
    assert ex.method == "synthesize" and ex.output_names == ["mel", "mel_lengths"]
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, model.vocab_size, (3, 33), generator=g)  # other batch and token count
    lengths = torch.tensor([33, 12, 25])
    err = export_checked(model, tmp_path / "tts.onnx", ex, atol=ATOL, check_inputs=(tokens, lengths))
    with torch.no_grad():
        mel_a, len_a = model.synthesize(*ex.example_inputs)
        mel_b, len_b = model.synthesize(tokens, lengths)
    assert mel_a.shape[-1] != mel_b.shape[-1]  # the check above ran on another frame count than the trace's
    assert err <= ATOL
    # and on the traced example itself (speed alpha = 1 is traced in as a constant)
    assert check_onnx(model, tmp_path / "tts.onnx", ex.example_inputs, ATOL, method="synthesize") <= ATOL


def test_transformer_tts_exports_its_encoder_only(tmp_path):
    torch.manual_seed(0)
    model = create_model("transformer_tts_small", **model_info("transformer_tts_small").tiny).eval()
    with pytest.raises(ConfigError, match="autoregressive"):
        export_spec(model, on="tokens")
    ex = export_spec(model, length=16)
    assert ex.method == "encode"
    tokens = torch.randint(1, model.vocab_size, (3, 21))
    err = export_checked(model, tmp_path / "enc.onnx", ex, atol=ATOL, check_inputs=(tokens, torch.tensor([21, 9, 15])))
    assert err <= ATOL
