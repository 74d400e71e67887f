"""audiozoo.dsp: signal processing in torch (batched, differentiable, no learned parameters).

Imports nothing from audiozoo except :mod:`audiozoo.errors`. numpy appears only at boundaries
(:mod:`.io`: soundfile decoding, soxr resampling; :mod:`.pitch`: the pyworld wrapper).
"""

from .augment import SpecAugment, add_noise_snr, mixup, random_gain
from .cqt import CQT1992, CQT2010, cqt
from .features import FeatureExtractor, feature_extractor_from_config, feature_extractors
from .griffinlim import griffin_lim, mel_to_linear
from .io import AudioFileStream, audio_info, load_audio, resample, save_audio
from .kaldi import KaldiFbank, NormalizedKaldiFbank, kaldi_fbank
from .mel import (
    MFCC,
    DecibelMelFrontend,
    LogMelSpectrogram,
    MelSpectrogram,
    VocoderMel,
    amplitude_to_db,
    db_to_power,
    dct_matrix,
    hz_to_mel,
    log_mel,
    mel_filterbank,
    mel_frequencies,
    mel_spectrogram,
    mel_to_hz,
    mfcc,
    power_to_db,
)
from .pitch import energy, f0_world, f0_yin, frame_rms, interpolate_unvoiced, warp_envelope, world_analyse, world_voice
from .specvqgan import SpecVQGANMel, specvqgan_mel_stats
from .stft import InverseSpectrogram, OverlapAddISTFT, Spectrogram, get_window, istft, pad_window, stft, stft_lengths

__all__ = [
    "AudioFileStream",
    "DecibelMelFrontend",
    "CQT1992",
    "CQT2010",
    "cqt",
    "energy",
    "FeatureExtractor",
    "feature_extractor_from_config",
    "feature_extractors",
    "f0_world",
    "warp_envelope",
    "world_analyse",
    "world_voice",
    "f0_yin",
    "frame_rms",
    "interpolate_unvoiced",
    "MFCC",
    "InverseSpectrogram",
    "KaldiFbank",
    "LogMelSpectrogram",
    "MelSpectrogram",
    "SpecAugment",
    "SpecVQGANMel",
    "specvqgan_mel_stats",
    "Spectrogram",
    "VocoderMel",
    "add_noise_snr",
    "amplitude_to_db",
    "audio_info",
    "db_to_power",
    "dct_matrix",
    "get_window",
    "griffin_lim",
    "hz_to_mel",
    "istft",
    "OverlapAddISTFT",
    "kaldi_fbank",
    "NormalizedKaldiFbank",
    "load_audio",
    "log_mel",
    "mel_filterbank",
    "mel_frequencies",
    "mel_to_linear",
    "mel_spectrogram",
    "mel_to_hz",
    "mfcc",
    "mixup",
    "pad_window",
    "power_to_db",
    "random_gain",
    "resample",
    "save_audio",
    "stft",
    "stft_lengths",
]
