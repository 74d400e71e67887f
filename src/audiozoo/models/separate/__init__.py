"""Source separators (family ``separate``): Demucs v2 and Conv-TasNet (waveform music / speech separation),
Mel-RoFormer (Mel-band RoPE transformer, STFT masking), MossFormer / MossFormer2 (gated single-head
transformer speech separation), USS (query-conditioned FiLM ResUNet)."""

from . import conv_tasnet, demucs, mel_roformer, mossformer, uss  # noqa: F401
