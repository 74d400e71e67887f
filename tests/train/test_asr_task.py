"""ASRTask: targets, joint CTC/attention loss, tiny models that learn (loss falls, greedy CER drops) for both
Samba-ASR and the Conformer baseline, augmentations, and one engine run from a recipe on a wav manifest."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

import audiozoo
from audiozoo.errors import ConfigError, DataError
from audiozoo.text import asr_char_tokenizer
from audiozoo.train.losses.ctc import IGNORE_INDEX, ctc_loss, token_cross_entropy
from audiozoo.train.tasks import get_task_class
from audiozoo.train.tasks.asr import ASRTask, text_targets

N_MELS, FRAMES_PER_CHAR = 16, 8
TEXTS = ["a bad cab", "dead beef", "face bead"]


def _templates(seed: int = 0) -> dict[str, torch.Tensor]:
    """A fixed random 'spectral pattern' (16 bands x 8 frames) per character: content the model can read."""
    g = torch.Generator().manual_seed(seed)
    return {c: 2 * torch.randn(N_MELS, FRAMES_PER_CHAR, generator=g) for c in " abcdef"}


def _batch(texts=TEXTS, seed=1) -> dict:
    tpl = _templates()
    g = torch.Generator().manual_seed(seed)
    feats = [torch.cat([tpl[c] for c in t], 1) for t in texts]
    n = max(f.shape[1] for f in feats)
    x = torch.zeros(len(texts), N_MELS, n)
    for i, f in enumerate(feats):
        x[i, :, : f.shape[1]] = f + 0.3 * torch.randn(f.shape, generator=g)
    return {"features": x, "feature_lengths": torch.tensor([f.shape[1] for f in feats]), "text": list(texts)}


def _tiny(name: str):
    torch.manual_seed(0)
    if name.startswith("samba"):
        return audiozoo.create_model(name, dim=32, enc_layers=1, dec_layers=1, d_state=8, n_mels=N_MELS, ctc=True)
    return audiozoo.create_model(name, dim=32, enc_layers=1, dec_layers=1, heads=2, dec_heads=2, kernel_size=5,
                                 n_mels=N_MELS, dropout=0.0)


def _validate(task: ASRTask, batch: dict) -> dict:
    task.model.eval()
    task.on_validation_start()
    with torch.no_grad():
        task.validation_step(batch)
    task.model.train()
    return task.validation_end()


def test_targets_and_losses():
    tok = asr_char_tokenizer()
    dec_in, dec_t, labels, lens = text_targets(tok, ["ab", "c"], bos=2, eos=3)
    a, b, c = tok.encode("abc")
    assert dec_in.tolist() == [[2, a, b], [2, c, 0]]
    assert dec_t.tolist() == [[a, b, 3], [c, 3, IGNORE_INDEX]]
    assert labels.tolist() == [[a, b], [c, 0]] and lens.tolist() == [2, 1]
    logits = torch.randn(2, 3, 33)
    want = torch.nn.functional.cross_entropy(logits[dec_t != IGNORE_INDEX], dec_t[dec_t != IGNORE_INDEX])
    assert torch.allclose(token_cross_entropy(logits, dec_t), want)
    lp = torch.randn(2, 6, 33).log_softmax(-1)
    per_utt = torch.nn.functional.ctc_loss(lp.transpose(0, 1), labels, torch.tensor([6, 5]), lens, blank=4,
                                           reduction="none")
    assert torch.allclose(ctc_loss(lp, torch.tensor([6, 5]), labels, lens, 4), per_utt.sum() / 3)


def test_registered_and_validated():
    assert get_task_class("asr") is ASRTask
    with pytest.raises(ConfigError, match="ctc_weight"):
        ASRTask(ctc_weight=1.5)
    with pytest.raises(ConfigError, match="speed_perturb"):
        ASRTask(speed_perturb=[3.0])
    with pytest.raises(ConfigError, match="decode"):
        ASRTask(decode="sample")
    task = ASRTask()
    task.models = {"model": _tiny("conformer_aed_small")}
    with pytest.raises(DataError, match="transcripts"):
        task.training_step({"features": torch.zeros(1, N_MELS, 20)})
    task.models = {"model": audiozoo.create_model("samba_asr_small", dim=16, enc_layers=1, dec_layers=1,
                                                  n_mels=N_MELS, ctc=False)}
    with pytest.raises(ConfigError, match="no CTC head"):
        task.training_step(_batch())


@pytest.mark.parametrize("name,steps", [("conformer_aed_small", 30), ("samba_asr_small", 20)])
def test_tiny_model_learns_fixed_utterances(name, steps):
    """Loss falls and greedy CER drops (attention decoder and CTC head) on three fixed utterances.

    Measured (seed 0): Conformer loss 5.67 -> 0.4, CER 1.0 -> 0.3, CTC CER 1.0 -> 0.04; Samba-ASR loss 5.35 ->
    0.06, CER 1.0 -> 0.0, CTC CER 1.67 -> 0.0."""
    task = ASRTask(ctc_weight=0.3, label_smoothing=0.0)
    task.models = {"model": _tiny(name)}
    batch = _batch()
    before = _validate(task, batch)
    opt = torch.optim.Adam(task.model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = task.training_step(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = _validate(task, batch)
    assert after["loss"] < 0.3 * before["loss"], (before, after)
    assert after["cer"] < before["cer"] and after["cer"] <= 0.5, (before["cer"], after["cer"])
    assert after["ctc_cer"] < before["ctc_cer"] and after["ctc_cer"] <= 0.25


def test_speed_perturbation_and_specaugment_on_audio():
    model = audiozoo.create_model("conformer_aed_small", dim=32, enc_layers=1, dec_layers=1, heads=2, dec_heads=2,
                                  kernel_size=5)
    task = ASRTask(speed_perturb=[1.25], specaugment={"freq_masks": 1, "freq_width": 10, "time_masks": 1,
                                                        "time_width": 5})
    task.models = {"model": model}
    audio = 0.1 * torch.randn(2, 16000)
    batch = {"audio": audio, "lengths": torch.tensor([16000, 12000]), "text": ["x", "y"]}
    feats, lengths = task.features(batch, train=True)
    assert lengths.tolist() == [81, 61]  # 12800 and 9600 samples after 1.25x speed-up, 10 ms hop, centred
    assert feats.shape[-1] == 81
    plain, plain_len = task.features(batch, train=False)
    assert plain_len.tolist() == [101, 76]


def test_engine_run_from_a_recipe(tmp_path):
    """task 'asr' trains through the engine on a wav manifest with transcripts; validation reports CER/WER."""
    rng = np.random.default_rng(0)
    items = []
    for i, text in enumerate(TEXTS * 2):
        p = tmp_path / f"u{i}.wav"
        sf.write(p, (0.1 * rng.standard_normal(8000 + 800 * i)).astype(np.float32), 16000)
        items.append({"audio_filepath": str(p), "duration": (8000 + 800 * i) / 16000, "text": text})
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(it) + "\n" for it in items))
    from audiozoo.train.recipe import evaluate_from_recipe, train_from_recipe

    recipe = {"model": {"name": "samba_asr_small", "dim": 16, "enc_layers": 1, "dec_layers": 1, "d_state": 4},
              "data": {"train": str(manifest), "valid": str(manifest), "test": str(manifest), "sample_rate": 16000,
                       "batch_size": 3, "num_workers": 0},
              "task": {"name": "asr", "ctc_weight": 0.5, "speed_perturb": [0.9, 1.0, 1.1],
                       "specaugment": {"freq_masks": 1, "freq_width": 8, "time_masks": 1, "time_width": 5},
                       "max_decode_len": 4},
              "optim": {"name": "adamw", "lr": 1e-3},
              "trainer": {"max_steps": 2, "eval_every": 2, "save_every": 2, "progress": False, "device": "cpu"},
              "out_dir": str(tmp_path / "run")}
    out = train_from_recipe(recipe)
    logs = [json.loads(ln) for f in out.glob("*.jsonl") for ln in f.read_text().splitlines()]
    valid = [r for r in logs if r.get("split") == "valid"]
    assert valid and all(math.isfinite(r["loss"]) and 0 <= r["cer"] and "ctc_cer" in r for r in valid)
    res = evaluate_from_recipe(recipe, out / "best")
    assert res["items"] == 6 and 0 <= res["cer"] and 0 <= res["wer"]
