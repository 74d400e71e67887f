"""Package a ``recipes/codec/wavtokenizer_small_speech.yaml`` run as the weight set ``wavtokenizer_small16k.TAG``.

    python recipes/codec/package_wavtokenizer_speech.py runs/wavtokenizer_small_speech/best [--tag speech]

Writes ``src/audiozoo/checkpoints/wavtokenizer_small16k.TAG/`` (``config.json`` + ``model.safetensors``) with the
quantiser projections, backbone and head stored as float16 (the encoder, codebooks and latent statistics stay
float32: the standardised lookup divides by the latents' small spread; the loader casts to the model's dtype),
checks that the folder loads back and gives the same codes as the calibrated float32 model on a test signal, and
prints the size and the sha256 for the WeightSet.

Before saving, the quantiser's latent statistics are recalibrated on training audio
(:meth:`audiozoo.nn.ResidualVQ.calibrate_standardization`, ``--calib-items`` clips of the training manifest, at
most 4 s each): training looks codes up with each batch's statistics and keeps only a lagging running average, as
BatchNorm does. ``--no-calibrate`` keeps the running averages.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from audiozoo.dsp.io import load_audio
from audiozoo.hub import file_sha256, save_pretrained
from audiozoo.registry import create_model, from_pretrained, shipped_checkpoints_dir

RECIPE = "recipes/codec/wavtokenizer_small_speech.yaml"
NAME = "wavtokenizer_small16k"


@torch.no_grad()
def calibrate(model: torch.nn.Module, manifest: Path, n_items: int, seed: int = 0) -> int:
    """Recalibrate the standardised codebooks on ``n_items`` random clips of ``manifest``; returns the frames used."""
    lines = [json.loads(x) for x in manifest.read_text().splitlines() if x.strip()]
    uniq = list({(d["audio_filepath"], d.get("offset", 0.0)): d for d in lines}.values())
    rng = np.random.default_rng(seed)
    lat = []
    for i in rng.choice(len(uniq), size=min(n_items, len(uniq)), replace=False):
        d = uniq[int(i)]
        p = Path(d["audio_filepath"])
        p = p if p.is_absolute() else manifest.parent / p
        wav, _ = load_audio(p, sample_rate=int(model.sample_rate), mono=True, offset=float(d.get("offset", 0.0)),
                            duration=min(4.0, float(d.get("duration", 4.0))))
        x = torch.as_tensor(np.asarray(wav, dtype=np.float32)).reshape(1, -1)
        x = 0.9 * x / x.abs().max().clamp(min=1e-3) * float(10 ** rng.uniform(-6 / 20, 0))  # the task's gain range
        lat.append(model.encoder(x[:, None]))
    z = torch.cat(lat, -1)
    model.quantizer.calibrate_standardization(z)
    return int(z.shape[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", help="a run's best/ or last/ folder")
    ap.add_argument("--tag", default="speech")
    ap.add_argument("--out", default=None, help="default: the package's checkpoints folder")
    ap.add_argument("--calib-manifest", default="cache/codec_speech/train.jsonl")
    ap.add_argument("--calib-items", type=int, default=96)
    ap.add_argument("--no-calibrate", action="store_true")
    args = ap.parse_args()
    run = from_pretrained(args.checkpoint).eval()
    # the run was built as wavtokenizer_frame75 with the recipe's overrides; the same config is NAME's default
    model = create_model(NAME, **{k: v for k, v in vars(run.config).items()}).eval()
    model.load_state_dict(run.state_dict())
    frames = 0 if args.no_calibrate else calibrate(model, Path(args.calib_manifest), args.calib_items)
    ref = create_model(NAME, **{k: v for k, v in vars(run.config).items()}).eval()
    ref.load_state_dict(model.state_dict())  # the calibrated float32 model, to check the float16 folder against
    # float16 storage for the decoder side only: the encoder stays float32 (its latents vary by ~1e-2 around a large
    # offset and are divided by that spread before the lookup, so float16-rounded encoder weights change most codes)
    for name, p in model.named_parameters():
        if not name.startswith("encoder."):
            p.data = p.data.half()
    state_json = Path(args.checkpoint) / "trainer_state.json"
    step = json.loads(state_json.read_text())["state"].get("progress", {}).get("step") if state_json.is_file() \
        else None
    meta = {"recipe": RECIPE, "step": step, "calibration_frames": frames, "source_checkpoint": str(args.checkpoint),
            "weights_dtype": "float16 (encoder float32)",
            "corpus": "cache/codec_speech: SiSec 2011 (s 0-8.5, 8 speakers) + espeak-ng/flite/Piper speech; "
                      "CMU ARCTIC and LibriSpeech clips held out"}
    out = Path(args.out) if args.out else shipped_checkpoints_dir() / f"{NAME}.{args.tag}"
    save_pretrained(model, out, metadata=meta)
    back = from_pretrained(out).eval()
    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    wav = (0.3 * torch.sin(2 * torch.pi * 180 * t) * (1 + torch.sin(2 * torch.pi * 3 * t)) / 2
           + 0.01 * torch.randn(16000, generator=g))[None]
    with torch.no_grad():
        c_ref, c_back = ref.encode(wav), back.encode(wav)
        same = float((c_ref == c_back).float().mean())
        diff = float((ref.decode(c_ref) - back.decode(c_ref)).abs().max())
    print(f"{out}: {sum(f.stat().st_size for f in out.iterdir()) / 1e6:.2f} MB, sha256 "
          f"{file_sha256(out / 'model.safetensors')}, codes equal to the calibrated float32 model: {same:.3f}, "
          f"max |audio diff| {diff:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
