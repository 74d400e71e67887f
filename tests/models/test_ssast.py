"""SSAST: parity with s3prl's copy of the official ASTModel (pretraining and fine-tuning stages), converter,
position-embedding adaptation, pretext objectives, cluster masking, padding independence, front end."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import math
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import audiozoo
from audiozoo.errors import AudioError, ConfigError
from audiozoo.hub import load_into
from audiozoo.models.ssl.ssast import adapt_pos_embed, checkpoint_filter_fn
from audiozoo.nn import patch_mask_indices

TIMM_DIR = Path(sys.prefix) / "timm-0.4.5"  # scripts/setup.sh: pip install --no-deps --target .venv/timm-0.4.5


def _reference_module():
    """s3prl 0.4.18's ``upstream/ssast/ast_models.py`` (the official ASTModel), loaded by file path.

    It asserts timm == 0.4.5, whose package imports torchvision (only for image transforms): timm comes from its
    own folder and torchvision is stubbed while timm is imported. Both are taken out of ``sys.modules`` again (the
    loaded module keeps its reference), so other tests (PaSST's timm stub, transformers) see nothing of them.
    """
    s3prl = pytest.importorskip("s3prl")
    if not (TIMM_DIR / "timm" / "version.py").is_file():
        pytest.skip(f"timm 0.4.5 not in {TIMM_DIR} (scripts/setup.sh installs it)")
    cached = sys.modules.get("_ssast_reference")
    if cached is not None:
        return cached
    saved = {k: v for k, v in sys.modules.items() if k == "timm" or k.startswith(("timm.", "torchvision"))}
    for k in saved:
        del sys.modules[k]
    for n in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"):
        m = types.ModuleType(n)
        m.__spec__ = importlib.machinery.ModuleSpec(n, None)
        sys.modules[n] = m
    sys.path.insert(0, str(TIMM_DIR))
    try:
        import timm  # noqa: F401

        path = Path(s3prl.__file__).parent / "upstream" / "ssast" / "ast_models.py"
        spec = importlib.util.spec_from_file_location("_ssast_reference", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(TIMM_DIR))
        for k in [k for k in sys.modules if k == "timm" or k.startswith(("timm.", "torchvision"))]:
            del sys.modules[k]
        sys.modules.update(saved)
    sys.modules["_ssast_reference"] = mod
    return mod


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Every tensor random (LayerNorms and biases too), so parity covers them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith("p_input") or name.endswith(("p_input_fdim", "p_input_tdim")):
                continue
            base = 1.0 if (p.ndim == 1 and "norm" in name and name.endswith("weight")) else 0.0
            p.copy_(base + 0.05 * torch.randn(p.shape, generator=g))


def _ref_pretrain(size: str, shape: tuple[int, int], tdim: int):
    ref = _reference_module().ASTModel(fshape=shape[0], tshape=shape[1], fstride=shape[0], tstride=shape[1],
                                       input_fdim=128, input_tdim=tdim, model_size=size, pretrain_stage=True)
    _randomise(ref)
    return ref.eval()


def _ours(name: str, **overrides):
    model = audiozoo.create_model(name, **overrides).eval()
    return model


def _close(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parity
@pytest.mark.parametrize("variant,shape", [("patch", (16, 16)), ("frame", (128, 2))])
def test_pretrain_network_matches_official(variant, shape):
    ref = _ref_pretrain("tiny", shape, tdim=64)
    ours = _ours(f"ssast_tiny_{variant}", max_length=64)
    load_into(ours, ref.state_dict(), converter=checkpoint_filter_fn)
    x = torch.randn(2, 64, 128)  # official input (B, T, F)
    with torch.no_grad():
        reps, final = ref(x)
        tokens, hidden, grid, _ = ours.encode(x.transpose(1, 2), return_hidden=True)
        feats = ours.extract_features(x.transpose(1, 2))
    # measured: 8.0e-7 (patch) / 6.4e-7 (frame) relative on the final tokens, 6.8e-7 at most per layer
    assert _close(tokens, final) < 1e-5
    gf, gt = grid
    for i, r in enumerate(reps[:-1]):  # s3prl concatenates the gf tokens of a column: (B, gt, gf * D)
        mine = hidden[i + 1][:, 2:].reshape(2, gf, gt, -1).transpose(1, 2).flatten(2)
        assert _close(mine, r) < 1e-5, i
        ref_cols = r.reshape(2, gt, gf, -1).mean(2)
        assert _close(feats[i + 1], ref_cols) < 1e-5, i
    assert len(feats) == 13 and _close(feats[-1], final[:, 2:].reshape(2, gf, gt, -1).mean(1)) < 1e-5


@pytest.mark.parity
@pytest.mark.parametrize("variant,shape,stride", [("patch", (16, 16), (10, 10)), ("frame", (128, 2), (128, 1))])
def test_finetune_adaptation_matches_official(tmp_path, variant, shape, stride):
    """The official fine-tuning path: a pretraining checkpoint (DataParallel layout, 1024 frames) loaded into a
    100-frame model with overlapping strides; the position embedding is centre-cut / resized."""
    ref_pre = _ref_pretrain("tiny", shape, tdim=1024)
    ckpt = tmp_path / "ssast.pth"
    torch.save(torch.nn.DataParallel(ref_pre).state_dict(), ckpt)
    ref = _reference_module().ASTModel(fshape=shape[0], tshape=shape[1], fstride=stride[0], tstride=stride[1],
                                       input_fdim=128, input_tdim=100, model_size="tiny", pretrain_stage=False,
                                       load_pretrained_mdl_path=str(ckpt)).eval()
    ours = _ours(f"ssast_tiny_{variant}", max_length=100, fstride=stride[0], tstride=stride[1])
    load_into(ours, torch.load(ckpt, weights_only=True), converter=checkpoint_filter_fn)
    x = torch.randn(2, 100, 128)
    with torch.no_grad():
        reps, final = ref(x)
        tokens, _, grid, _ = ours.encode(x.transpose(1, 2))
    assert grid == ((12, 9) if variant == "patch" else (1, 99))
    assert _close(tokens, final) < 1e-5  # measured 7.8e-7 / 6.7e-7


def test_adapt_pos_embed_cuts_the_centre_and_resizes():
    pos = torch.arange(8 * 64, dtype=torch.float32).reshape(1, 8 * 64, 1)
    cut = adapt_pos_embed(pos, (8, 64), (8, 9)).reshape(8, 9)
    assert torch.equal(cut[0], torch.arange(28, 37, dtype=torch.float32))  # 64 // 2 - 9 // 2 = 28
    same = adapt_pos_embed(pos, (8, 64), (8, 64))
    assert torch.equal(same, pos)
    grown = adapt_pos_embed(pos, (8, 64), (12, 9)).reshape(12, 9)
    assert grown.shape == (12, 9) and float(grown[0, 0]) >= 28 and float(grown[-1, -1]) <= 7 * 64 + 36


def test_converter_adapts_an_audiozoo_checkpoint_to_finetuning_strides():
    pre = audiozoo.create_model("ssast_tiny_patch", max_length=128, depth=1)
    ft = audiozoo.create_model("ssast_tiny_patch", max_length=101, fstride=10, tstride=10, depth=1)
    load_into(ft, checkpoint_filter_fn(pre.state_dict(), ft))  # same keys: the converter is called explicitly
    assert ft.pos_embed.shape == (1, 2 + 12 * 9, 192)
    assert torch.equal(ft.patch_embed.proj.weight, pre.patch_embed.proj.weight)


def test_nce_and_mse_follow_the_official_formulas():
    torch.manual_seed(0)
    model = _ours("ssast_tiny_patch", **audiozoo.model_info("ssast_tiny_patch").tiny)
    x = torch.randn(3, 32, 64)
    g = torch.Generator().manual_seed(3)
    out = model(x, objective="nce", generator=g)
    # recompute with the official per-item loop (mpc): total = target @ pred^T, log-softmax over dim -1
    g = torch.Generator().manual_seed(3)
    grid = model.grid(64)
    idx = patch_mask_indices(grid, 20, torch.full((3,), grid[1]), generator=g)
    tokens, *_ = model.encode(x, mask_index=idx)
    target = F.unfold(x.unsqueeze(1), (8, 8), stride=(8, 8)).transpose(1, 2)
    nce, correct = 0.0, 0
    for i in range(3):
        pred = model.disc_head(tokens[i, idx[i] + 2])
        total = target[i, idx[i]] @ pred.T
        nce += torch.diag(torch.log_softmax(total, dim=-1)).sum()
        correct += int((torch.softmax(total, dim=-1).argmax(dim=0) == torch.arange(20)).sum())
    assert torch.allclose(out["nce"], -nce / 60, atol=1e-5)
    assert math.isclose(float(out["acc"]), correct / 60, abs_tol=1e-6)
    assert math.isclose(float(out["loss"]), float(out["nce"]), rel_tol=1e-6)
    mse = model(x, objective="mse", generator=torch.Generator().manual_seed(3))
    assert math.isclose(float(mse["loss"]), 10 * float(mse["mse"]), rel_tol=1e-6)
    joint = model(x, separate_passes=False, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(joint["loss"], joint["nce"] + 10 * joint["mse"])


def test_eval_masks_are_fixed_and_train_masks_random():
    model = _ours("ssast_tiny_patch", **audiozoo.model_info("ssast_tiny_patch").tiny)
    x = torch.randn(2, 32, 64)
    with torch.no_grad():
        assert torch.equal(model(x)["loss"], model(x)["loss"])
        model.train()
        model.pos_drop.p = 0.0
        assert not torch.equal(model(x)["loss"], model(x)["loss"])


def test_cluster_masks_are_clustered_and_stay_in_the_valid_part():
    g = torch.Generator().manual_seed(0)
    valid = torch.tensor([64, 20])
    idx = patch_mask_indices((8, 64), 100, valid, strategy="cluster", generator=g)
    rnd = patch_mask_indices((8, 64), 100, valid, strategy="random", generator=g)
    assert idx.shape == (2, 100) and all(len(set(r.tolist())) == 100 for r in idx)
    assert int((idx[1] % 64).max()) < 20 and int((rnd[1] % 64).max()) < 20

    def neighbours(row):  # masked cells with a masked right-hand neighbour
        cells = set(row.tolist())
        return sum(1 for c in cells if (c + 1) in cells and (c + 1) % 64 != 0)

    assert neighbours(idx[0]) > 2 * neighbours(rnd[0])  # measured 79 vs 16
    with pytest.raises(ConfigError, match="cannot mask"):
        patch_mask_indices((8, 64), 200, valid)


def test_a_batch_gives_each_item_what_it_gets_alone():
    model = _ours("ssast_tiny_patch", **audiozoo.model_info("ssast_tiny_patch").tiny)
    x = torch.randn(2, 32, 64)
    lengths = torch.tensor([64, 41])
    with torch.no_grad():
        batched = model.extract_features(x, lengths)
        alone = model.extract_features(x[1:, :, :41])
    n = int(model.output_lengths(lengths)[1])
    assert n == alone[-1].shape[1] == 5 and batched[-1].shape[1] == 8
    for b, a in zip(batched, alone):
        assert torch.allclose(b[1, :n], a[0], atol=1e-5)
        assert not b[1, n:].any()  # zero past the valid part


def test_frontend_is_the_ast_frontend_with_free_length():
    from audiozoo.models.classify.ast import ASTConfig, ASTFrontend

    wav = 0.1 * torch.randn(2, 16000)
    lengths = torch.tensor([16000, 9000])
    ours = audiozoo.create_model("ssast_tiny_patch", depth=1).frontend
    feats, frames = ours(wav, lengths)
    ref, ref_frames = ASTFrontend(ASTConfig(max_length=98))(wav, lengths)
    assert feats.shape == (2, 128, 98) and torch.equal(frames, ref_frames)
    assert torch.allclose(feats, ref, atol=1e-6)


def test_bad_inputs_raise_clear_errors():
    model = _ours("ssast_tiny_patch", **audiozoo.model_info("ssast_tiny_patch").tiny)
    with pytest.raises(AudioError, match=r"\(B, 32, L\)"):
        model.extract_features(torch.randn(1, 40, 64))
    with pytest.raises(AudioError, match="at least 8 frames"):
        model(torch.randn(1, 32, 5))
    with pytest.raises(ConfigError, match="objective"):
        model(torch.randn(1, 32, 64), objective="both")
    with pytest.raises(ConfigError, match="num_mask_patches"):
        model(torch.randn(1, 32, 64), num_masked=32)  # the whole grid
