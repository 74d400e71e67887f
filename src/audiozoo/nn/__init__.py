"""Shared neural-network blocks (import only ``audiozoo.dsp`` and torch)."""

from .acoustic_condition import ConditionalLayerNorm, ConvConditionEncoder, segment_mean
from .activations import Snake1d
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
from .alignment import LengthRegulator, durations_from_alignment, length_regulate, monotonic_alignment_search
from .attention import CrossAttention, MultiHeadAttention
from .autoregressive import KVCache, cfg_logits, generate, sample_tokens, top_k_filter, top_p_filter
from .bandsplit import (
    BandMaskEstimator,
    BandSplit,
    ConvISTFT,
    ConvSTFT,
    OverlapAverage,
    RMSNorm,
    average_overlapping,
    band_indices,
    mel_band_assignment,
)
from .beam_search import beam_search, greedy_search
from .conformer import (
    ConformerAttention,
    ConformerBlock,
    ConformerConvModule,
    ConformerEncoder,
    ConformerFeedForward,
    Conv2dSubsampling,
    lengths_to_padding_mask,
    relative_positional_encoding,
)
from .conv import CausalConv1d, ChannelLayerNorm, ConvBlock2d, ConvNormAct, get_padding
from .convnext import GRN, ConvNeXtV2Block
from .ctc import (
    TokenSpan,
    ctc_collapse,
    ctc_greedy_decode,
    ctc_prefix_beam_search,
    forced_align,
    min_ctc_frames,
    token_spans,
    word_spans,
)
from .delightful import DelightfulConformer, ReferenceEncoder, StyleTokenLayer, XLRelPosAttention
from .diffusion import NoiseSchedule, beta_schedule
from .discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from .embeddings import sinusoidal_positions, timestep_embedding
from .fastspeech import FFTBlock, FFTStack, PostNet, VariancePredictor, bucketize_embed
from .gla import GatedLinearAttention, gla_chunk, gla_recurrent
from .mamba import BiMambaMixer, MambaAddNormBlock, MambaBlock, MambaMixer, MambaState, reverse_padded, selective_scan
from .maskgit import mask_schedule, maskgit_decode
from .masking import band_mask, patch_mask_indices, span_mask, span_starts
from .mossformer import MossFormer2Encoder
from .patch import PatchEmbed, resample_pos_embed
from .quantize import FSQ, MaskedChannelRVQ, NormEMAVectorQuantizer, ResidualVQ, VectorQuantizer, VQOutput
from .relpos import (
    ConvPositionalEmbedding,
    GatedRelPosAttention,
    RelativePositionBias,
    RelPosTransformerEncoder,
    RelPosTransformerLayer,
    relative_position_bucket,
)
from .resblocks import MRF, ResBlock1, ResBlock2
from .rope import RotaryEmbedding, apply_rotary, rope_cos_sin, rope_inv_freq, rotate_half, rotate_interleaved
from .samplers import FlowMatchingBatch, ode_solve, time_grid
from .seanet import SEANetDecoder, SEANetEncoder, StreamableConv1d, StreamableConvTranspose1d
from .tcn import ChannelwiseLayerNorm, GlobalLayerNorm, TCNBlock, TemporalConvNet, sequence_norm
from .transformer import (
    DropPath,
    FusedTransformerBlock,
    Mlp,
    TransformerBlock,
    TransformerDecoder,
    TransformerDecoderBlock,
    TransformerEncoder,
    fuse_for_inference,
    vit_head,
)
from .transformer_tts import (
    ConvPrenet,
    DecoderPrenet,
    ScaledPositionalEncoding,
    cross_attention_probs,
    durations_from_attention,
    focus_rate,
)
from .vocoder import HiFiGANTrunk
from .vocos import AdaLayerNorm, AttnBlock1d, ISTFTHead, ResnetBlock1d, SameISTFT, VocosBackbone
from .weight_norm import apply_spectral_norm, apply_weight_norm, convert_legacy_weight_norm_keys, remove_weight_norm

__all__ = [
    # generative core (issue #11): samplers, embeddings, diffusion, MaskGIT, autoregressive decoding, quantisers
    "FSQ", "GRN", "ConvNeXtV2Block", "CrossAttention", "FlowMatchingBatch", "KVCache", "NoiseSchedule",
    "MaskedChannelRVQ", "NormEMAVectorQuantizer", "ResidualVQ", "TransformerDecoder", "TransformerDecoderBlock",
    "VQOutput", "VectorQuantizer", "beta_schedule",
    "cfg_logits", "generate", "mask_schedule", "maskgit_decode", "ode_solve", "sample_tokens",
    "sinusoidal_positions", "time_grid", "timestep_embedding", "top_k_filter", "top_p_filter",
    "BottleneckAdapter", "CausalConv1d", "ChannelLayerNorm", "ConvBlock2d", "ConvNormAct", "DropPath",
    "FusedTransformerBlock", "HiFiGANTrunk", "LoRALinear", "MRF", "Mlp", "MultiHeadAttention",
    "MultiPeriodDiscriminator", "MultiScaleDiscriminator", "PatchEmbed", "PrefixTuning", "PromptedEncoder",
    "ResBlock1", "ResBlock2", "TransformerBlock", "TransformerEncoder", "add_bottleneck_adapters",
    "add_lora", "add_prefix_tuning", "add_prompt_tuning", "apply_spectral_norm", "apply_weight_norm",
    "convert_legacy_weight_norm_keys", "count_trainable", "fuse_for_inference", "get_padding",
    "mark_only_adapters_trainable", "remove_weight_norm", "resample_pos_embed", "vit_head",
]
# sequence blocks (issue #11): rope, conformer, mamba, gated linear attention, alignment
__all__ += [
    "BiMambaMixer", "ConformerAttention", "ConformerBlock", "ConformerConvModule", "ConformerEncoder",
    "ConformerFeedForward", "Conv2dSubsampling", "GatedLinearAttention", "LengthRegulator", "MambaBlock",
    "MambaAddNormBlock",
    "MambaMixer", "MambaState", "RotaryEmbedding", "apply_rotary", "durations_from_alignment", "gla_chunk",
    "gla_recurrent", "length_regulate", "lengths_to_padding_mask", "monotonic_alignment_search",
    "relative_positional_encoding", "reverse_padded", "rope_cos_sin", "rope_inv_freq", "rotate_half",
    "rotate_interleaved", "selective_scan",
]
# generic blocks moved out of HiFi-SR (issue #11)
__all__ += ["MossFormer2Encoder", "Snake1d"]
# Conv-TasNet's temporal convolutional network (issue #15)
__all__ += ["ChannelwiseLayerNorm", "GlobalLayerNorm", "TCNBlock", "TemporalConvNet", "sequence_norm"]
# masked-prediction pretraining masks (issue #13: SSAST, TERA)
__all__ += ["band_mask", "patch_mask_indices", "span_mask", "span_starts"]
# codec blocks (issue #14): EnCodec's SEANet, the Vocos backbone / iSTFT head with WavTokenizer's pos_net
__all__ += ["AdaLayerNorm", "AttnBlock1d", "ISTFTHead", "ResnetBlock1d", "SEANetDecoder", "SEANetEncoder", "SameISTFT",
            "StreamableConv1d", "StreamableConvTranspose1d", "VocosBackbone"]
# speech recognition (issue #17): CTC decoding and forced alignment, greedy/beam search over a re-indexable state
__all__ += ["TokenSpan", "beam_search", "ctc_collapse", "ctc_greedy_decode", "ctc_prefix_beam_search", "forced_align",
            "greedy_search", "min_ctc_frames", "token_spans", "word_spans"]
# FastSpeech family (issue #16): FFT blocks, variance predictor, Tacotron 2 post-net, bucketed embeddings
__all__ += ["FFTBlock", "FFTStack", "PostNet", "VariancePredictor", "bucketize_embed"]
# Transformer TTS (issue #16): Tacotron 2 pre-nets, scaled positions, attention weights, FastSpeech's durations
__all__ += ["ConvPrenet", "DecoderPrenet", "ScaledPositionalEncoding", "cross_attention_probs",
            "durations_from_attention", "focus_rate"]
# band-split front end / mask estimation of spectrogram separators (issue #15: Mel-RoFormer)
__all__ += ["BandMaskEstimator", "BandSplit", "ConvISTFT", "ConvSTFT", "OverlapAverage", "RMSNorm",
            "average_overlapping", "band_indices", "mel_band_assignment"]
# WavLM / BEATs blocks (issue #13): gated relative position bias attention, conv positions, deep-norm layer
__all__ += ["ConvPositionalEmbedding", "GatedRelPosAttention", "RelPosTransformerEncoder", "RelPosTransformerLayer",
            "RelativePositionBias", "relative_position_bucket"]
# AdaSpeech (issue #16): conditional LayerNorm, acoustic-condition encoders, phoneme-level frame means
__all__ += ["ConditionalLayerNorm", "ConvConditionEncoder", "segment_mean"]
# DelightfulTTS blocks (issue #16)
__all__ += ["DelightfulConformer", "ReferenceEncoder", "StyleTokenLayer", "XLRelPosAttention"]
