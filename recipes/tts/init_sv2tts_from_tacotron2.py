"""Warm start for the SV2TTS synthesizer: a trained single-speaker Tacotron 2 with speaker-embedding inputs added.

SV2TTS concatenates the speaker embedding to every encoder output (Jia et al. 2018, Section 2.2), so the
attention memory grows from ``encoder_dim`` to ``encoder_dim + speaker_embed_dim``. Every layer that reads the
memory (the attention's memory projection, the first decoder LSTM's input, the mel and stop projections) gets new
input columns for the speaker part, **initialised to zero**: the warm-started synthesizer computes exactly what the
Tacotron 2 computed, whatever the embedding, and training then learns how the voice should change the output.
Every other weight is copied. The paper trains the synthesizer from scratch on 1.2K speakers; here the text ->
speech mapping learned on the Piper voice is the starting point for a CPU budget (said in the model card).

    python recipes/tts/init_sv2tts_from_tacotron2.py runs/tacotron2_small_piper/best runs/sv2tts_init
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

import torch

import audiozoo
from audiozoo.hub import save_pretrained
from audiozoo.resolve import resolve_model


def widen(src: torch.nn.Module, speaker_dim: int = 256) -> torch.nn.Module:
    """A ``sv2tts_synthesizer`` with ``src``'s config (plus ``speaker_dim``) and ``src``'s weights, the new speaker
    columns zero."""
    cfg = {k: v for k, v in asdict(src.config).items() if k != "speaker_embed_dim"}
    dst = audiozoo.create_model("sv2tts_synthesizer", **{**cfg, "speaker_embed_dim": speaker_dim})
    enc, dec, s = src.config.encoder_dim, src.config.decoder_dim, speaker_dim
    old, new = src.state_dict(), dst.state_dict()
    out = {}
    for k, v in new.items():
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
    args = ap.parse_args()
    src = resolve_model(args.tacotron2, "tts").eval()
    dst = widen(src, args.speaker_dim).eval()
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
