"""Speech recognition (family ``asr``): Samba-ASR (Mamba encoder-decoder) and its attention baseline, a Conformer
CTC/attention encoder-decoder."""

from . import conformer_aed, samba_asr  # noqa: F401
