"""Source separators (family ``separate``): Demucs v2 and Conv-TasNet (waveform music / speech separation),
Mel-RoFormer (Mel-band RoPE transformer, STFT masking)."""

from . import conv_tasnet, demucs, mel_roformer  # noqa: F401
