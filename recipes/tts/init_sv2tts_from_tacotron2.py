"""Warm start for the SV2TTS synthesizer: a trained single-speaker Tacotron 2 with speaker-embedding inputs added.

SV2TTS concatenates the speaker embedding to every encoder output (Jia et al. 2018, Section 2.2), so the
attention memory grows from ``encoder_dim`` to ``encoder_dim + speaker_embed_dim``. Every layer that reads the
memory (the attention's memory projection, the first decoder LSTM's input, the mel and stop projections) gets new
input columns for the speaker part, **initialised to zero**: the warm-started synthesizer computes exactly what the
Tacotron 2 computed, whatever the embedding, and training then learns how the voice should change the output.
Every other weight is copied. The paper trains the synthesizer from scratch on 1.2K speakers; here the text ->
speech mapping learned on the Piper voice is the starting point for a CPU budget (said in the model card).

    python recipes/tts/init_sv2tts_from_tacotron2.py runs/tacotron2_small_piper/best runs/sv2tts_init

``--center-on MANIFEST`` (stop 29) builds the synthesizer with ``speaker_norm="center"``: the d-vectors are centred on
the mean of the manifest's ``speaker_embedding`` column (the training corpus) and scaled to unit RMS per dimension
before the concatenation, so that the decoder sees what differs between voices rather than their common part.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

import torch

import audiozoo
from audiozoo.data.manifest import read_manifest
from audiozoo.hub import save_pretrained
from audiozoo.resolve import resolve_model


def widen(src: torch.nn.Module, speaker_dim: int = 256, speaker_norm: str = "l2") -> torch.nn.Module:
    """A ``sv2tts_synthesizer`` with ``src``'s config (plus ``speaker_dim``, ``speaker_norm``) and ``src``'s weights,
    the new speaker columns zero (the centring statistics, if any, are left at their defaults)."""
    cfg = {k: v for k, v in asdict(src.config).items() if k not in ("speaker_embed_dim", "speaker_norm")}
    dst = audiozoo.create_model("sv2tts_synthesizer", **{**cfg, "speaker_embed_dim": speaker_dim,
                                                         "speaker_norm": speaker_norm})
    enc, dec, s = src.config.encoder_dim, src.config.decoder_dim, speaker_dim
    old, new = src.state_dict(), dst.state_dict()
    out = {}
    for k, v in new.items():
        if k in ("speaker_center", "speaker_scale"):
            out[k] = v.clone()
            continue
        w = old[k]
        if w.shape == v.shape:
            out[k] = w.clone()
            continue
        z = torch.zeros_like(v)
        if k == "attention.memory_layer.weight":  # (att, memory): memory = [encoder, speaker]
            z[:, :enc] = w
        elif k == "decoder_lstm.0.cell.weight_ih":  # (4H, memory + prenet): input = [context, prenet]
            z[:, :enc], z[:, enc + s:] = w[:, :enc], w[:, enc:]
        elif k in ("mel_out.weight", "stop_out.weight"):  # (out, H + memory): input = [LSTM output, context]
            z[:, :dec + enc] = w
        else:
            raise RuntimeError(f"unexpected shape change for {k}: {tuple(w.shape)} -> {tuple(v.shape)}")
        out[k] = z
    dst.load_state_dict(out)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tacotron2", help="a trained single-speaker Tacotron 2 (run folder or weight set)")
    ap.add_argument("out", help="folder for the warm-started sv2tts_synthesizer")
    ap.add_argument("--speaker-dim", type=int, default=256)
    ap.add_argument("--center-on", default=None, metavar="MANIFEST",
                    help="speaker_norm='center' with the statistics of this manifest's speaker_embedding column")
    args = ap.parse_args()
    src = resolve_model(args.tacotron2, "tts").eval()
    dst = widen(src, args.speaker_dim, "center" if args.center_on else "l2").eval()
    if args.center_on:
        rows = read_manifest(args.center_on)
        if any("speaker_embedding" not in r for r in rows):
            raise SystemExit(f"{args.center_on}: every row needs a speaker_embedding (prepare_sv2tts_voices.py)")
        dst.set_speaker_statistics(torch.tensor([r["speaker_embedding"] for r in rows]))
        print(f"speaker centre from {len(rows)} d-vectors; scale {float(dst.speaker_scale):.2f}")
    # check: with the new columns zero, the output ignores the speaker and equals the Tacotron 2's
    tok = torch.randint(1, src.config.vocab_size, (1, 12))
    mel = torch.randn(1, src.config.n_mels, 9)
    with torch.no_grad():
        a = src(tok, mel=mel).mel
        b = dst(tok, mel=mel, speaker_embedding=torch.randn(1, args.speaker_dim)).mel
    print(f"max |difference| of the teacher-forced mel: {float((a - b).abs().max()):.2e}")
    save_pretrained(dst, args.out, metadata={"init": f"{args.tacotron2} widened by init_sv2tts_from_tacotron2.py"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
