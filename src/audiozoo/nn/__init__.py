"""Shared neural-network blocks (import only ``audiozoo.dsp`` and torch)."""

from .adapters import (
    BottleneckAdapter,
    LoRALinear,
    PrefixTuning,
    PromptedEncoder,
    add_bottleneck_adapters,
    add_lora,
    add_prefix_tuning,
    add_prompt_tuning,
    count_trainable,
    mark_only_adapters_trainable,
)
from .attention import MultiHeadAttention
from .conv import CausalConv1d, ChannelLayerNorm, ConvBlock2d, ConvNormAct, get_padding
from .discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from .patch import PatchEmbed, resample_pos_embed
from .resblocks import MRF, ResBlock1, ResBlock2
from .transformer import (
    DropPath,
    FusedTransformerBlock,
    Mlp,
    TransformerBlock,
    TransformerEncoder,
    fuse_for_inference,
    vit_head,
)
from .vocoder import HiFiGANTrunk, VocoderMel
from .weight_norm import apply_spectral_norm, apply_weight_norm, convert_legacy_weight_norm_keys, remove_weight_norm

__all__ = [
    "BottleneckAdapter", "CausalConv1d", "ChannelLayerNorm", "ConvBlock2d", "ConvNormAct", "DropPath",
    "FusedTransformerBlock", "HiFiGANTrunk", "LoRALinear", "MRF", "Mlp", "MultiHeadAttention",
    "MultiPeriodDiscriminator", "MultiScaleDiscriminator", "PatchEmbed", "PrefixTuning", "PromptedEncoder",
    "ResBlock1", "ResBlock2", "TransformerBlock", "TransformerEncoder", "VocoderMel", "add_bottleneck_adapters",
    "add_lora", "add_prefix_tuning", "add_prompt_tuning", "apply_spectral_norm", "apply_weight_norm",
    "convert_legacy_weight_norm_keys", "count_trainable", "fuse_for_inference", "get_padding",
    "mark_only_adapters_trainable", "remove_weight_norm", "resample_pos_embed", "vit_head",
]
