"""Shared neural-network blocks (import only ``audiozoo.dsp`` and torch)."""

from .attention import MultiHeadAttention
from .patch import PatchEmbed, resample_pos_embed
from .transformer import DropPath, Mlp, TransformerBlock, TransformerEncoder

__all__ = [
    "DropPath", "Mlp", "MultiHeadAttention", "PatchEmbed", "TransformerBlock", "TransformerEncoder",
    "resample_pos_embed",
]
