"""Package a trained separator run (4-stem music or 2-speaker speech) as a shipped weight set ``MODEL.TAG``.

    python recipes/separate/package_separator.py runs/demucs_small_music4/best \
        --results recipes/separate/results_demucs_small_music4.json
    python recipes/separate/package_separator.py runs/conv_tasnet_small_music4/best \
        --results recipes/separate/results_conv_tasnet_small_music4.json \
        --recipe recipes/separate/conv_tasnet_small_music4.yaml
    python recipes/separate/package_separator.py runs/conv_tasnet_medium_speech/best --tag voices_medium_8k \
        --results recipes/separate/results_conv_tasnet_medium_speech.json \
        --recipe recipes/separate/conv_tasnet_medium_speech.yaml --corpus recipes/separate/prepare_speech.py
    python recipes/separate/package_separator.py runs/conv_tasnet_medium_speech_stage2/best --tag voices_medium_s2_8k \
        --results recipes/separate/results_conv_tasnet_medium_speech_stage2.json \
        --recipe recipes/separate/conv_tasnet_medium_speech_stage2.yaml --corpus recipes/separate/prepare_speech.py

MODEL is the run's registry name (``demucs_small``, ``conv_tasnet_music``, ``conv_tasnet_speech``); ``--results``
is the JSON of ``eval_music4.py`` or of ``eval_real.py``.

Writes ``src/audiozoo/checkpoints/MODEL.TAG/`` (``config.json`` + ``model.safetensors``) from the run's
EMA weights (when present), stored as float16 (the loader casts back to the model's float32; 3.9 MB instead of
7.9 MB), with the recipe, training step and held-out metrics in the metadata. Checks that the folder loads back and
separates like the float32 weights, and prints the sha256 for the model's ``WeightSet``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from audiozoo.hub import file_sha256, save_pretrained
from audiozoo.registry import from_pretrained, shipped_checkpoints_dir
from audiozoo.train.checkpoint import load_ema_weights

RECIPE = "recipes/separate/demucs_small_music4.yaml"
CORPUS = "recipes/separate/prepare_music4.py (cache/music4), test pieces and voices held out"


def _load(checkpoint: Path) -> torch.nn.Module:
    model = from_pretrained(checkpoint).eval()
    load_ema_weights(model, checkpoint)
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", help="a run's best/ or last/ folder")
    ap.add_argument("--tag", default="music4")
    ap.add_argument("--results", default=None, help="JSON written by eval_music4.py")
    ap.add_argument("--out", default=None, help="default: the package's checkpoints folder")
    ap.add_argument("--recipe", default=RECIPE, help=f"the recipe that trained it (default {RECIPE})")
    ap.add_argument("--corpus", default=CORPUS, help=f"how its data was built (default {CORPUS})")
    args = ap.parse_args()
    ck = Path(args.checkpoint)
    model = _load(ck)
    ref = _load(ck)
    for p in model.parameters():  # float16 storage
        p.data = p.data.half()
    state_json = ck / "trainer_state.json"
    step = json.loads(state_json.read_text())["state"].get("progress", {}).get("step") if state_json.is_file() \
        else None
    meta = {"recipe": args.recipe, "step": step, "source_checkpoint": str(ck), "weights": "EMA",
            "corpus": args.corpus,
            "weights_dtype": "float16"}
    if args.results:
        res = json.loads(Path(args.results).read_text())
        if "stems" in res:  # eval_music4.py
            meta["held_out"] = {"clips": res["clips"], "pieces": len(res["pieces"]), "voices": res["voices"],
                                "stems": res["stems"]}
        else:  # eval_real.py (possibly several test sets, one key each)
            sets = {k: v for k, v in res.items() if isinstance(v, dict) and "results" in v} or {"test": res}
            meta["held_out"] = {k: {"manifest": v["manifest"], "items": v["items"], "results": v["results"]}
                                for k, v in sets.items()}
    out = Path(args.out) if args.out else shipped_checkpoints_dir() / f"{model.model_name}.{args.tag}"
    save_pretrained(model, out, metadata=meta)
    back = from_pretrained(out).eval()
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(1, int(back.audio_channels), int(back.sample_rate) * 2, generator=g)
    with torch.no_grad():
        a, b = ref(x), back(x.to(next(back.parameters()).dtype)).float()
    print(f"{out}: {sum(f.stat().st_size for f in out.iterdir()) / 1e6:.2f} MB, sha256 "
          f"{file_sha256(out / 'model.safetensors')}, max |output diff| vs float32 {float((a - b).abs().max()):.5f} "
          f"(output peak {float(a.abs().max()):.3f}), dtype {next(back.parameters()).dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
