"""SpecVQGAN's log-mel spectrogram (Iashin & Rahtu, "Taming Visually Guided Sound Generation", BMVC 2021).

The front end of SpecVQGAN's codebook, of its Melception (FID / MKL) and VGGish-ish (LPAPS) classifiers.
Official code: https://github.com/v-iashin/SpecVQGAN (MIT), ``feature_extraction/extract_mel_spectrogram.py``
(``TRANSFORMS``) and ``specvqgan/modules/losses/vggishish/transforms.py`` (``StandardNormalizeAudio``).

1. magnitude (power 1) STFT: 22.05 kHz, Hann window 1024, hop 256, centred frames with reflect padding
   (``librosa.stft`` of librosa 0.8.0, the version SpecVQGAN pins; librosa >= 0.10 pads with zeros);
2. 80 Slaney mel filters over 125-7600 Hz (``librosa.filters.mel``);
3. ``20 log10(max(mel, 1e-5)) - 20`` dB, then ``(dB + 100) / 100`` clipped to ``[0, 1]``;
4. (classifiers only) per-mel-bin standardisation ``(x - mean_f) / std_f`` with statistics of the training
   set: per clip, the mean and std over time of each bin, averaged over the clips.

SpecVQGAN's data pipeline also trims to 860 frames and centre-crops to 848 for the classifiers; that is
data handling (the classifiers take any length), left to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from .features import FeatureExtractor
from .mel import mel_filterbank
from .stft import Spectrogram, stft_lengths

__all__ = ["SpecVQGANMel", "VGGSOUND_MEL_MEANS", "VGGSOUND_MEL_STDS", "specvqgan_mel_stats"]

#: SpecVQGAN's per-bin statistics of its VGGSound training spectrograms (the official
#: ``specvqgan/modules/losses/vggishish/data/train_means_stds_melspec_10s_22050hz.txt``; the same file ships
#: for LPAPS): the input normalisation of the official Melception and VGGish-ish checkpoints.
VGGSOUND_MEL_MEANS: tuple[float, ...] = (
    0.51234712, 0.52630101, 0.52002938, 0.51831866, 0.52457265, 0.51129235, 0.51403755, 0.51189406, 0.50142221,
    0.50632402, 0.49724399, 0.4906213, 0.49971113, 0.48442903, 0.48598301, 0.4868163, 0.47436119, 0.48031359,
    0.4742281, 0.46369397, 0.47413055, 0.46062686, 0.45677793, 0.46135474, 0.452468, 0.45232766, 0.45208386,
    0.44351671, 0.44667316, 0.44447692, 0.43676363, 0.44002381, 0.43772414, 0.43061019, 0.43120828, 0.42603271,
    0.42863234, 0.42296206, 0.41733331, 0.41804121, 0.41605068, 0.40875265, 0.40666997, 0.40407463, 0.40353311,
    0.39708031, 0.39375066, 0.39301091, 0.39047117, 0.3846168, 0.38145284, 0.37985209, 0.37419526, 0.37080597,
    0.36786535, 0.36569049, 0.36336079, 0.35775191, 0.35504801, 0.35284816, 0.34594865, 0.34112312, 0.33784886,
    0.33095703, 0.32559461, 0.32003106, 0.31506222, 0.31138077, 0.30403516, 0.2996954, 0.29578024, 0.28861871,
    0.28581686, 0.27922253, 0.27444035, 0.27339468, 0.26571759, 0.26280864, 0.25664202, 0.24853513,
)
VGGSOUND_MEL_STDS: tuple[float, ...] = (
    0.08187601, 0.08393201, 0.08533191, 0.08651366, 0.087957, 0.08924046, 0.09011565, 0.09138965, 0.09215379,
    0.09251092, 0.0935659, 0.09333057, 0.09446411, 0.09400197, 0.09477853, 0.09487848, 0.09424447, 0.09417475,
    0.09498061, 0.09362415, 0.09453825, 0.09481226, 0.09359464, 0.09437913, 0.09384014, 0.09438247, 0.0941972,
    0.0934088, 0.09423184, 0.09344461, 0.09265266, 0.09307925, 0.09299363, 0.09236166, 0.09156491, 0.09161403,
    0.0915053, 0.09102536, 0.09048366, 0.09025013, 0.09078869, 0.08985338, 0.08877566, 0.08961667, 0.08859275,
    0.08827818, 0.08833999, 0.08760654, 0.08812327, 0.08782288, 0.08645484, 0.08718211, 0.08644421, 0.08532454,
    0.08592822, 0.08452069, 0.08474272, 0.08476392, 0.08334654, 0.0841211, 0.08367254, 0.08252251, 0.08320975,
    0.08257768, 0.08171253, 0.08204872, 0.08098545, 0.08152917, 0.08209135, 0.08073266, 0.08225822, 0.08324076,
    0.08058489, 0.0851535, 0.08355056, 0.08067638, 0.08536921, 0.0810762, 0.08357468, 0.08556041,
)


class SpecVQGANMel(FeatureExtractor):
    """Waveform ``(B, T)`` -> SpecVQGAN log-mel ``(B, n_mels, L)`` in ``[0, 1]`` (standardised per bin when
    ``means``/``stds`` are given), ``L = T // hop + 1``.

    Args:
        means, stds: per-bin statistics (``n_mels`` values each) of step 4, or ``None`` for the ``[0, 1]``
            spectrogram the codebook models. A bin whose std is 0 raises :class:`ConfigError`.
        amin: magnitude floor before the log (SpecVQGAN ``LowerThresh(1e-5)``).
        ref_db, min_db: ``(dB - ref_db - min_db) / -min_db`` is the ``[0, 1]`` scaling (20 and -100).
    """

    def __init__(self, sample_rate: int = 22050, n_fft: int = 1024, hop_length: int = 256, n_mels: int = 80,
                 f_min: float = 125.0, f_max: float = 7600.0, amin: float = 1e-5, ref_db: float = 20.0,
                 min_db: float = -100.0, means: Sequence[float] | None = None,
                 stds: Sequence[float] | None = None) -> None:
        super().__init__()
        if not min_db < 0:
            raise ConfigError(f"SpecVQGANMel min_db must be < 0, got {min_db}")
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = sample_rate, n_fft, hop_length, n_mels
        self.f_min, self.f_max, self.amin, self.ref_db, self.min_db = f_min, f_max, amin, ref_db, min_db
        self.means = None if means is None else tuple(float(v) for v in means)
        self.stds = None if stds is None else tuple(float(v) for v in stds)
        if (self.means is None) != (self.stds is None):
            raise ConfigError("SpecVQGANMel needs both means and stds (or neither)")
        if self.means is not None:
            if len(self.means) != n_mels or len(self.stds) != n_mels:
                raise ConfigError(f"SpecVQGANMel means/stds need {n_mels} values each (one per mel bin), got "
                                  f"{len(self.means)} and {len(self.stds)}")
            if min(self.stds) <= 0:
                raise ConfigError("SpecVQGANMel stds must be > 0 in every mel bin")
            self.register_constant("mean", torch.tensor(self.means, dtype=torch.float64)[:, None])
            self.register_constant("std", torch.tensor(self.stds, dtype=torch.float64)[:, None])
        self.n_features = n_mels
        self.min_samples = n_fft // 2 + 1
        self.min_samples_reason = f"reflect padding by n_fft/2={n_fft // 2} needs more samples than that"
        self.spec = Spectrogram(n_fft, hop_length, n_fft, "hann", center=True, pad_mode="reflect", power=1.0)
        self.register_constant("fb", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, dtype=torch.float64))

    def num_frames(self, n_samples: int | Tensor) -> int | Tensor:
        return stft_lengths(n_samples, self.n_fft, self.hop_length, center=True)

    def compute(self, wav: Tensor) -> Tensor:
        mel = torch.matmul(self.fb.to(wav.dtype), self.spec(wav))
        db = 20.0 * torch.log10(mel.clamp(min=self.amin)) - self.ref_db
        x = ((db - self.min_db) / -self.min_db).clamp(0.0, 1.0)
        if self.means is not None:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return x


def specvqgan_mel_stats(mels: Sequence[Tensor]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-bin statistics as SpecVQGAN's ``StandardNormalizeAudio`` computes them from training clips.

    Args:
        mels: ``[0, 1]`` spectrograms ``(n_mels, L_i)`` (one per clip, any lengths).
    Returns:
        ``(means, stds)``: the per-clip mean / std over time of each bin (``np.std``: population), averaged
        over the clips, as ``n_mels``-tuples (float64 accumulation; stds floored at 1e-4).
    """
    if not mels:
        raise ConfigError("specvqgan_mel_stats needs at least one spectrogram")
    m = torch.stack([x.double().mean(-1) for x in mels]).mean(0)
    # a bin that never varies (e.g. always below the -100 dB floor) would divide by zero: floor it
    s = torch.stack([x.double().std(-1, correction=0) for x in mels]).mean(0).clamp(min=1e-4)
    return tuple(m.tolist()), tuple(s.tolist())
