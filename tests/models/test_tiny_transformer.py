"""Tiny Transformer (Elliott et al. 2021): parameter budget, patching, masking, learning, ONNX."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import audiozoo
from audiozoo.models.classify.tiny_transformer import TinyTransformer, TinyTransformerConfig


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_paper_budget_and_count_breakdown():
    with torch.device("meta"):
        model = audiozoo.create_model("tiny_transformer")
    c = model.config
    d, h = c.hidden_size, c.intermediate_size
    # BERT layer: fused qkv + output projection, FFN, two LayerNorms
    layer = (3 * d * d + 3 * d) + (d * d + d) + (d * h + h) + (h * d + d) + 4 * d
    expected = ((c.patch_freq * c.patch_time) * d + d + d + (c.max_positions + 1) * d + 2 * d
                + c.num_layers * layer + (d * d + d) + (d * c.num_classes + c.num_classes))
    assert _count(model) == expected == audiozoo.model_info("tiny_transformer").params
    # the paper: "just over 6,000 parameters"
    assert 6000 <= _count(model) <= 6500


def test_patch_tokens_order_and_mask():
    cfg = TinyTransformerConfig(n_mels=4, patch_freq=2, patch_time=2, max_positions=8, hidden_size=4,
                                num_heads=1, intermediate_size=8, num_classes=2)
    model = TinyTransformer(cfg)
    x = torch.arange(4 * 5, dtype=torch.float32).reshape(1, 4, 5)  # (F=4, L=5): value = 5 f + t
    tok, pad = model.tokens(x, torch.tensor([3]))
    # 2 bands x ceil(5/2)=3 time steps, time-major; each token is a (2 freq x 2 time) patch, row-major
    assert tok.shape == (1, 6, 4)
    assert tok[0, 0].tolist() == [0, 1, 5, 6]  # band 0, frames 0-1
    assert tok[0, 1].tolist() == [10, 11, 15, 16]  # band 1, frames 0-1
    assert tok[0, 5].tolist() == [14, 0, 19, 0]  # band 1, frame 4 + zero padding
    # length 3: time steps starting at frames 0 and 2 are valid, the one at frame 4 is padding
    assert pad[0].tolist() == [False, False, False, False, True, True]


def test_padding_does_not_change_logits():
    model = audiozoo.create_model("tiny_transformer", **audiozoo.model_info("tiny_transformer").tiny).eval()
    x = torch.randn(1, model.config.n_mels, 20)
    junk = torch.cat([x, 5 * torch.randn(1, model.config.n_mels, 4)], dim=-1)
    with torch.no_grad():
        a = model(x, torch.tensor([20]))
        b = model(junk, torch.tensor([20]))
    # the padded tokens are masked out of attention; only float32 summation order differs (~1e-7)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("feature", ["mel", "mfcc"])
def test_frontend_options(feature):
    model = audiozoo.create_model("tiny_transformer", feature=feature)
    wav = 0.1 * torch.randn(2, 16000)
    feats, frames = model.frontend(wav, torch.tensor([16000, 8000]))
    assert feats.shape == (2, 40, 101) and frames.tolist() == [101, 51]  # 10 ms hop, centred frames
    assert torch.isfinite(model(feats, frames)).all()


def test_learns_a_trivial_task():
    torch.manual_seed(0)
    model = audiozoo.create_model("tiny_transformer", **audiozoo.model_info("tiny_transformer").tiny)
    model.train()
    # class 0: +-1 stripes across mel bins, class 1: the opposite phase (every token carries the class)
    y = torch.arange(16) % 2
    stripes = torch.tensor([1.0, -1.0]).repeat(8)[:, None]
    x = 0.3 * torch.randn(16, 16, 12) + torch.where(y[:, None, None] == 0, stripes, -stripes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # chance level is ln 2 = 0.69; a working model gets far below it on this separable task
    assert losses[-1] < 0.2 < losses[0]


@pytest.mark.parity
def test_onnx_export_dynamic_batch_and_time(tmp_path):
    from audiozoo.export import check_onnx, export_onnx

    model = audiozoo.create_model("tiny_transformer", **audiozoo.model_info("tiny_transformer").tiny).eval()
    x = torch.randn(2, model.config.n_mels, 30)
    path = export_onnx(model, tmp_path / "tt.onnx", (x,), ["features"], ["logits"],
                       {"features": {0: "batch", 2: "time"}, "logits": {0: "batch"}})
    # float32 op-by-op differences between ONNX Runtime and PyTorch are ~1e-7; 1e-4 is the project's bar
    err = max(check_onnx(model, path, (x,), 1e-4), check_onnx(model, path, (torch.randn(3, 16, 42),), 1e-4))
    assert err <= 1e-4
