"""Family contracts (DESIGN.md): one base class per model family, which every model of the family inherits.

Each base class owns what the registry-parametrised tests need to drive *any* model of its family the same
way, and to check it:

- :meth:`AudioModel.example_inputs` builds random inputs of a given length (the last batch item shorter, so
  the ``lengths`` path is exercised);
- :meth:`AudioModel.check_outputs` checks the outputs for those inputs against the family's contract (shapes,
  dtypes, returned lengths that match the valid part, attributes) and raises :class:`ContractError` naming
  the model and what is wrong.

The checks live here, beside the contract they state, so a new family member is checked by the existing
tests the moment it is registered (``tests/models/test_contracts.py``).

Families: classify, ssl, vocoder, codec, tts, separate, enhance, generate, caption / asr / s2st
(sequence-to-sequence), transcribe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..dsp.mel import VocoderMel
from ..errors import AudioError, AudiozooError, ConfigError
from ..nn import patch_mask_indices, resample_pos_embed
from ..train.losses.ssl import masked_patch_info_nce, masked_reconstruction_loss

__all__ = [
    "FAMILY_BASES", "AudioModel", "ClassifierModel", "CodecModel", "ContractError", "EmbedderModel", "EnhancerModel",
    "frontend_config", "MaskedPatchSSLModel",
    "GeneratorModel", "SSLModel", "SeparatorModel", "Seq2SeqModel", "TTSModel", "TranscriberModel",
    "VarianceTTSModel", "VocoderModel", "example_inputs", "AutoregressiveTTSConfig", "AutoregressiveTTSModel",
    "AutoregressiveTTSOutput",
]


def frontend_config(fe: nn.Module) -> dict[str, Any]:
    """A front end's serialisable config (``get_config()`` of a :class:`audiozoo.dsp.FeatureExtractor`)."""
    get = getattr(fe, "get_config", None)
    if callable(get):
        return get()
    simple = {k: v for k, v in vars(fe).items()
              if not k.startswith("_") and k != "training" and isinstance(v, (int, float, str, bool))}
    return {"type": type(fe).__name__, **simple}


class ContractError(AudiozooError, AssertionError):
    """A model breaks its family's contract (raised by ``check_outputs``)."""


def _lengths(length: int, batch: int) -> Tensor:
    """``[length, length - 3, length - 6, ...]`` (at least 1): the last items are shorter than the batch."""
    return torch.tensor([length] + [max(1, length - 3 * (i + 1)) for i in range(batch - 1)])


def _expect(cond: bool, model: nn.Module, what: str) -> None:
    if not cond:
        raise ContractError(f"{getattr(model, 'model_name', type(model).__name__)} ({type(model).__name__}) breaks "
                            f"the {getattr(model, 'family', '?')} contract: {what}")


def _is_float(x: Any) -> bool:
    return isinstance(x, Tensor) and x.is_floating_point()


class AudioModel(nn.Module):
    """Base of every audiozoo model: a registry name, a dataclass ``config`` and a family contract.

    Subclasses set ``family`` (through their family base) and implement ``example_inputs`` and
    ``check_outputs``. ``model_name`` is set by :func:`audiozoo.create_model`.
    """

    family: ClassVar[str] = ""
    #: attributes every model of the family must carry (checked by :meth:`check_attributes`)
    required_attributes: ClassVar[tuple[str, ...]] = ("config",)
    #: methods every model of the family must implement
    required_methods: ClassVar[tuple[str, ...]] = ("forward",)

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        """Random inputs of ``length`` frames (or samples / tokens, as the family says) as ``(args, kwargs)``."""
        raise NotImplementedError(f"{type(self).__name__} has no example inputs")

    def check_outputs(self, args: tuple, kwargs: dict, out: Any) -> None:
        """Raise :class:`ContractError` if ``out = self(*args, **kwargs)`` breaks the family contract."""
        raise NotImplementedError

    def input_spec(self) -> dict[str, Any]:
        """The input contract, derived from the config (``model_info(name).input``; never written by hand)."""
        spec: dict[str, Any] = {"family": self.family}
        sr = getattr(self, "sample_rate", None) or getattr(getattr(self, "config", None), "sample_rate", None)
        if sr is not None:
            spec["sample_rate"] = int(sr)
        fe = getattr(self, "frontend", None)
        if fe is not None:
            spec["frontend"] = frontend_config(fe)
        return spec

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "features") -> dict[str, Any]:
        """What :func:`audiozoo.export.export_spec` exports for this model: ``example_inputs`` (a tuple),
        ``input_names``, ``output_names`` and ``dynamic_axes`` (``{name: {axis: label}}``)."""
        raise ConfigError(f"no export spec for {type(self).__name__}; call export_onnx with explicit names/axes")

    def check_attributes(self) -> None:
        for a in self.required_attributes:
            _expect(getattr(self, a, None) is not None, self, f"missing attribute {a!r}")
        for m in self.required_methods:
            _expect(callable(getattr(self, m, None)), self, f"missing method {m}()")
        fe = getattr(self, "frontend", None)
        if fe is not None and hasattr(fe, "sample_rate") and hasattr(self, "sample_rate"):
            # a model's input rate is its front end's rate (output rates may differ: enhance, hifinet)
            if self.family not in ("enhance",) and not getattr(self, "output_sample_rate", None):
                _expect(int(fe.sample_rate) == int(self.sample_rate), self,
                        f"frontend.sample_rate {fe.sample_rate} != sample_rate {self.sample_rate}")


# --------------------------------------------------------------------------------------------- classify
class ClassifierModel(AudioModel):
    """``forward(features (B, F, L), lengths (B,) | None) -> logits (B, num_classes)``.

    ``frontend`` turns a waveform into the features (a :class:`audiozoo.dsp.FeatureExtractor`);
    ``feature_dim`` is ``F``; ``max_frames`` is the longest input the model takes (``None``: any length —
    pipelines then chunk with a default window).
    """

    family = "classify"
    required_attributes = ("config", "num_classes", "frontend")
    required_methods = ("forward", "forward_features", "reset_classifier")

    def input_dim(self) -> int:
        """``F`` of the features ``forward`` takes (a model may set ``feature_dim``; default ``config.n_mels``)."""
        return int(getattr(self, "feature_dim", None) or self.config.n_mels)

    @property
    def max_frames(self) -> int | None:
        return getattr(self.config, "max_length", None)

    def input_spec(self) -> dict[str, Any]:
        return {**super().input_spec(), "features": f"(B, {self.input_dim()}, L)", "max_frames": self.max_frames,
                "num_classes": int(self.num_classes)}

    def export_length(self, length: int | None) -> int:
        """Example frame count for export (models whose graph depends on the length override this)."""
        return int(length or 64)

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "features") -> dict[str, Any]:
        if on != "features":
            raise ConfigError(f"{type(self).__name__} exports on features; its front-end is a separate module")
        x = torch.randn(batch, self.input_dim(), self.export_length(length))
        return {"example_inputs": (x,), "input_names": ["features"], "output_names": ["logits"],
                "dynamic_axes": {"features": {0: "batch", 2: "time"}, "logits": {0: "batch"}}}

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, self.input_dim(), length, generator=g)
        return (x,), {"lengths": _lengths(length, batch)}

    def check_outputs(self, args: tuple, kwargs: dict, out: Any) -> None:
        b = args[0].shape[0]
        _expect(_is_float(out), self, f"logits must be a float tensor, got {type(out).__name__}")
        _expect(tuple(out.shape) == (b, self.num_classes), self,
                f"logits shape {tuple(out.shape)}, expected {(b, self.num_classes)}")


# --------------------------------------------------------------------------------------------- vocoder
class VocoderModel(AudioModel):
    """``forward(mel (B, n_mels, L), lengths (B,) | None) -> (wav (B, T), wav_lengths (B,))``.

    ``wav_lengths[i] == output_length(lengths[i])`` and ``T == output_length(L)``; samples past an item's
    length are zero. ``frontend`` computes the mel the vocoder was trained on from a waveform.
    """

    family = "vocoder"
    required_attributes = ("config", "sample_rate", "hop_length", "n_mels", "frontend")
    #: peak level of the audio the vocoder was trained on (``None``: not normalised). Pipelines that vocode
    #: a waveform through its mel scale it to this peak first and undo the gain after (copy-synthesis at the
    #: level of the training data; jik876's HiFi-GAN data loader normalises every clip to 0.95).
    input_peak: float | None = None

    def output_length(self, frames: Tensor | int) -> Tensor | int:
        """Samples produced for ``frames`` mel frames (``frames * hop_length`` unless a model says otherwise)."""
        return frames * self.hop_length

    def input_spec(self) -> dict[str, Any]:
        return {**super().input_spec(), "features": f"log-mel (B, {self.n_mels}, L)",
                "hop_length": int(self.hop_length)}

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(batch, self.n_mels, length, generator=g),), {"lengths": _lengths(length, batch)}

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "features") -> dict[str, Any]:
        """``mel (B, n_mels, L) -> (wav (B, T), wav_lengths (B,))`` with dynamic batch and frames (the mel
        front end is a separate module, as for classifiers)."""
        if on != "features":
            raise ConfigError(f"{type(self).__name__} exports on a mel; its front-end is a separate module")
        mel = torch.randn(batch, self.n_mels, int(length or 32))
        return {"example_inputs": (mel,), "input_names": ["mel"], "output_names": ["wav", "wav_lengths"],
                "dynamic_axes": {"mel": {0: "batch", 2: "frames"}, "wav": {0: "batch", 1: "samples"},
                                 "wav_lengths": {0: "batch"}}}

    def check_outputs(self, args: tuple, kwargs: dict, out: Any) -> None:
        mel, lengths = args[0], kwargs.get("lengths")
        _expect(isinstance(out, tuple) and len(out) >= 2, self, "must return (wav, wav_lengths)")
        wav, wl = out[0], out[1]
        _expect(_is_float(wav) and wav.ndim == 2 and wav.shape[0] == mel.shape[0], self,
                f"wav must be float (B, T), got {tuple(wav.shape)}")
        _expect(wav.shape[-1] == int(self.output_length(mel.shape[-1])), self,
                f"{mel.shape[-1]} frames gave {wav.shape[-1]} samples, expected {self.output_length(mel.shape[-1])}")
        if lengths is not None:
            want = self.output_length(lengths.to(wl.device))
            _expect(torch.equal(wl.long(), torch.as_tensor(want).long()), self,
                    f"wav_lengths {wl.tolist()} != output_length(lengths) {torch.as_tensor(want).tolist()}")
            tail = torch.arange(wav.shape[-1], device=wav.device)[None] >= wl[:, None]
            _expect(not wav[tail].abs().gt(0).any(), self, "samples past an item's length must be zero")


# --------------------------------------------------------------------------------------------- enhance
class EnhancerModel(AudioModel):
    """Degraded waveform -> waveform (super-resolution, denoising).

    ``forward(features (B, F, L), lengths) -> (wav (B, T), wav_lengths)`` where ``frontend`` computes the
    features of the degraded input; ``sample_rate`` is the *output* rate. :meth:`enhance` runs both.
    """

    family = "enhance"
    required_attributes = ("config", "sample_rate", "frontend")

    def output_length(self, frames: Tensor | int) -> Tensor | int:
        return frames * self.frontend.hop_length

    def input_dim(self) -> int:
        return int(getattr(self, "n_mels", None) or self.frontend.n_features)

    def input_spec(self) -> dict[str, Any]:
        return {**super().input_spec(), "features": f"(B, {self.input_dim()}, L) of the degraded input",
                "output_sample_rate": int(self.sample_rate)}

    def enhance(self, wav: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(B, T)`` degraded audio at ``sample_rate`` -> enhanced ``(B, T')`` and lengths."""
        feats, frames = self.frontend(wav, lengths)
        return self(feats, frames)

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(batch, self.input_dim(), length, generator=g),), {"lengths": _lengths(length, batch)}

    def check_outputs(self, args: tuple, kwargs: dict, out: Any) -> None:
        VocoderModel.check_outputs(self, args, kwargs, out)  # same (features, lengths) -> (wav, lengths) shape


# --------------------------------------------------------------------------------------------- transcribe
class TranscriberModel(AudioModel):
    """``forward(audio (B, T)) -> {name: activations (B, L, bins)}`` with ``L == frontend.num_frames(T)``."""

    family = "transcribe"
    required_attributes = ("config", "sample_rate", "hop_length")

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        return (0.1 * torch.randn(batch, length * self.hop_length, generator=g),), {}

    def input_spec(self) -> dict[str, Any]:
        return {**super().input_spec(), "input": "waveform (B, T)", "hop_length": int(self.hop_length)}

    def num_frames(self, n_samples: int) -> int:
        return int(self.frontend.num_frames(n_samples)) if hasattr(self.frontend, "num_frames") else \
            n_samples // self.hop_length + 1

    def check_outputs(self, args: tuple, kwargs: dict, out: Any) -> None:
        b, t = args[0].shape
        _expect(isinstance(out, dict) and out, self, "must return a dict of activations")
        frames = {v.shape[1] for v in out.values()}
        for k, v in out.items():
            _expect(_is_float(v) and v.ndim == 3 and v.shape[0] == b, self,
                    f"activation {k!r} must be float (B, L, bins), got {tuple(v.shape)}")
        _expect(len(frames) == 1, self, f"activations disagree on the frame count: {sorted(frames)}")
        _expect(frames.pop() == self.num_frames(t), self, f"frame count differs from num_frames({t})")


# --------------------------------------------------------------------------------------------- codec
class CodecOutput(NamedTuple):
    """What a trainable waveform codec's ``forward(wav)`` returns: ``audio (B, T)`` the reconstruction (trimmed
    to the input), ``codes (B, Q, L)``, ``vq`` the quantiser's :class:`audiozoo.nn.VQOutput` (inputs / codewords for
    the commitment loss), ``latents (B, D, L)`` the encoder output."""

    audio: Tensor
    codes: Tensor
    vq: Any
    latents: Tensor


class CodecModel(AudioModel):
    """``encode(wav (B, T)) -> codes (B, Q, L)`` (long, in ``[0, codebook_size)``) or, for a continuous
    autoencoder (``codebook_size is None``), latents ``(B, D, L)``; ``decode(codes) -> wav (B, T)``.

    ``frame_rate = sample_rate / hop_length`` codes per second; ``bitrate`` in bits/s
    (``num_codebooks * log2(codebook_size) * frame_rate``; ``None`` for continuous latents).
    """

    family = "codec"
    required_attributes = ("config", "sample_rate", "hop_length", "frame_rate")
    required_methods = ("forward", "encode", "decode")
    num_codebooks: int = 0
    codebook_size: int | None = None

    def input_spec(self) -> dict[str, Any]:
        return {**super().input_spec(), "input": "waveform (B, T)", "hop_length": int(self.hop_length),
                "frame_rate": float(self.frame_rate), "num_codebooks": int(self.num_codebooks),
                "codebook_size": self.codebook_size, "bitrate": self.bitrate}

    @property
    def bitrate(self) -> float | None:
        if not self.codebook_size:
            return None
        return self.num_codebooks * math.log2(self.codebook_size) * self.frame_rate

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        return (0.1 * torch.randn(batch, length * self.hop_length, generator=g),), {}

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "encode") -> dict[str, Any]:
        """The two halves a codec language model needs, exported separately: ``on="encode"``:
        ``wav (B, T) -> codes (B, Q, L)``; ``on="decode"``: ``codes (B, Q, L) -> wav (B, T)``; ``length`` is
        in frames. Batch and time are dynamic; ``Q`` is the full set of codebooks. An exported encoder takes
        ``T`` a multiple of ``hop_length`` (pad on the right, as ``pad_to_hop``): strided convolutions' end
        padding is computed in Python and traced for such lengths."""
        frames = int(length or 16)
        if on == "encode":
            wav = 0.1 * torch.randn(batch, frames * int(self.hop_length))
            return {"example_inputs": (wav,), "input_names": ["wav"], "output_names": ["codes"],
                    "dynamic_axes": {"wav": {0: "batch", 1: "samples"}, "codes": {0: "batch", 2: "frames"}},
                    "method": "encode"}
        if on == "decode":
            # real codes (or continuous latents) of a noise input: the right Q / latent size for every codec
            with torch.no_grad():
                codes = self.encode(0.1 * torch.randn(batch, frames * int(self.hop_length)))
            return {"example_inputs": (codes,), "input_names": ["codes"], "output_names": ["wav"],
                    "dynamic_axes": {"codes": {0: "batch", 2: "frames"}, "wav": {0: "batch", 1: "samples"}},
                    "method": "decode"}
        raise ConfigError(f"a codec exports on='encode' or on='decode', got {on!r}")

    def check_outputs(self, args: tuple, kwargs: dict, out: Any) -> None:
        wav = args[0]
        b, t = wav.shape
        with torch.no_grad():
            codes = self.encode(wav)
            _expect(codes.ndim == 3 and codes.shape[0] == b and codes.shape[-1] == t // self.hop_length, self,
                    f"encode gave {tuple(codes.shape)}, expected (B, Q, {t // self.hop_length})")
            if self.codebook_size:
                _expect(not codes.is_floating_point() and codes.shape[1] == self.num_codebooks, self,
                        f"codes must be integer (B, {self.num_codebooks}, L)")
                _expect(bool(((codes >= 0) & (codes < self.codebook_size)).all()), self, "codes out of range")
            else:
                _expect(codes.is_floating_point(), self, "continuous latents must be float")
            rec = self.decode(codes)
        _expect(_is_float(rec) and rec.shape[0] == b and rec.shape[-1] == t, self,
                f"decode(encode(wav)) gave {tuple(rec.shape)}, expected ({b}, {t})")


# --------------------------------------------------------------------------------------------- ssl
class SSLModel(AudioModel):
    """Self-supervised encoder.

    - ``extract_features(x, lengths, layers=None) -> list[(B, L', D)]``: hidden states (``num_layers + 1`` of
      them: the embedding output, then every layer; ``layers`` picks some by index), ``x`` features
      ``(B, F, L)`` from ``frontend`` (or a waveform ``(B, T)``, which goes through ``frontend`` first);
      ``output_lengths(lengths) -> (B,)`` valid positions of each item.
    - ``forward(features (B, F, L), lengths (B,) | None, **masking) -> dict`` is the pretext task: the model
      masks / alters its input (``masking`` overrides the config's strategy; masks come from
      ``audiozoo.nn.masking``) and returns ``{"loss": scalar, other scalars...}``, the paper's objective.
      In ``eval()`` mode the masks are drawn from a fixed seed, so validation losses compare across epochs.
    - ``pretrain_loss(batch, **masking)``: ``forward`` on a batch ``{"audio"|"features", "lengths"}``.
    """

    family = "ssl"
    required_attributes = ("config", "num_layers", "embed_dim", "frontend")
    required_methods = ("forward", "extract_features", "pretrain_loss", "output_lengths")

    def pretrain_loss(self, batch: dict[str, Any], **masking: Any) -> dict[str, Tensor]:
        """The pretext loss of a batch ``{"features": (B, F, L)}`` (+ ``"feature_lengths"``) or ``{"audio": (B, T)}``
        (+ ``"lengths"``, through ``frontend``); ``masking`` goes to ``forward`` (the model's masking / alteration
        options)."""
        lengths = batch.get("lengths")
        if "features" in batch:
            feats = batch["features"]
            lengths = batch.get("feature_lengths", lengths)
        else:
            feats, lengths = self.frontend(batch["audio"], lengths)
        return self(feats, lengths, **masking)

    def input_dim(self) -> int:
        """``F`` of the features ``forward`` takes (``feature_dim`` if the model sets it, else ``config.n_mels``)."""
        return int(getattr(self, "feature_dim", None) or self.config.n_mels)

    def encode_features(self, features: Tensor, lengths: Tensor) -> Tensor:
        """The last hidden state ``(B, L', D)`` of ``features (B, F, L)``: the encoder as ONNX exports it."""
        return self.extract_features(features, lengths, layers=[-1])[0]

    #: the traced encoder holds the example's length (position tables sliced by Python ints, padding packed by
    #: data-dependent sorts): export a fixed length of unpadded items; only the batch stays dynamic
    export_fixed_length: ClassVar[bool] = False
    #: default example length ``L`` of :meth:`export_signature` (frames; samples for waveform encoders)
    export_length: ClassVar[int] = 128

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "features") -> dict[str, Any]:
        """``encode_features(features (B, F, L), lengths (B,)) -> hidden (B, L', D)``, dynamic batch and length, or
        batch only where :attr:`export_fixed_length` (the pretext task with its random masks is a training graph,
        not exported)."""
        if on != "features":
            raise ConfigError(f"{type(self).__name__} exports its encoder on features, got on={on!r}")
        n = int(length or self.export_length)
        x = torch.randn(batch, self.input_dim(), n, generator=torch.Generator().manual_seed(0))
        if self.export_fixed_length:
            return {"example_inputs": (x, torch.full((batch,), n)), "input_names": ["features", "lengths"],
                    "output_names": ["hidden"], "method": "encode_features",
                    "dynamic_axes": {"features": {0: "batch"}, "lengths": {0: "batch"}, "hidden": {0: "batch"}}}
        return {"example_inputs": (x, _lengths(n, batch)), "input_names": ["features", "lengths"],
                "output_names": ["hidden"], "method": "encode_features",
                "dynamic_axes": {"features": {0: "batch", 2: "frames"}, "lengths": {0: "batch"},
                                 "hidden": {0: "batch", 1: "positions"}}}

    def input_spec(self) -> dict[str, Any]:
        return {**super().input_spec(), "features": f"(B, {self.input_dim()}, L)", "num_layers": int(self.num_layers),
                "embed_dim": int(self.embed_dim)}

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, self.input_dim(), length, generator=g)
        return (x,), {"lengths": _lengths(length, batch)}

    def check_outputs(self, args: tuple, kwargs: dict, out: Any) -> None:
        _expect(isinstance(out, dict) and isinstance(out.get("loss"), Tensor) and out["loss"].ndim == 0, self,
                "forward (the pretext task) must return a dict with a scalar 'loss'")
        _expect(bool(torch.isfinite(out["loss"])), self, f"pretext loss is not finite: {out['loss']}")
        feats = self.extract_features(*args, **kwargs)
        _expect(isinstance(feats, list) and len(feats) == self.num_layers + 1, self,
                f"extract_features must return a list of num_layers + 1 = {self.num_layers + 1} hidden states")
        lengths = kwargs.get("lengths")
        for f in feats:
            _expect(_is_float(f) and f.ndim == 3 and f.shape[0] == args[0].shape[0] and f.shape[-1] == self.embed_dim,
                    self, f"hidden states must be float (B, L, {self.embed_dim}), got {tuple(f.shape)}")
        if lengths is not None:
            n = self.output_lengths(lengths)
            _expect(int(n.max()) == feats[-1].shape[1] and bool((n >= 1).all()), self,
                    f"output_lengths {n.tolist()} do not match the {feats[-1].shape[1]} positions returned")
        picked = self.extract_features(*args, layers=[0, -1], **kwargs)
        _expect(len(picked) == 2 and torch.equal(picked[-1], feats[-1]), self, "layers=[0, -1] must pick hidden states")


class MaskedPatchSSLModel(SSLModel):
    """Base of the encoders pretrained by SSAST's masked spectrogram patch modelling (MSPM; Gong et al., AAAI 2022,
    arXiv:2110.09784, Sec. 2.2): SSAST (a DeiT encoder) and SSAMBA (a bidirectional Mamba encoder) share all of it
    but the encoder.

    Inputs are features ``(B, n_mels, L)``, cut into a frequency-major patch grid ``(gf, gt)`` by ``patch_embed``
    (:class:`audiozoo.nn.PatchEmbed`) behind ``num_prefix_tokens`` prefix tokens (cls, distillation). The pretext
    task: ``count`` patches (the same fraction of a shorter input's valid patches) are replaced by ``mask_embed``;
    an MLP head (``disc_head``, official ``cpredlayer``) maps each masked token to the flattened ``f x t`` patch
    for an InfoNCE among the item's masked patches (``mpc``), a second one (``gen_head``, ``gpredlayer``)
    reconstructs it under MSE (``mpg``); the loss is ``nce + mse_weight * mse``, by default from two passes with
    independent masks (``traintest_mask.py``).

    A subclass builds ``frontend``, ``patch_embed`` and ``pos_embed (1, P + gf*gt, D)``, calls
    :meth:`_init_pretext` where the official model creates the mask embedding and heads, and implements
    :meth:`encode`. Its config carries ``n_mels``, ``max_length``, ``patch_f``/``patch_t``, ``fstride``/``tstride``,
    ``num_mask_patches``, ``mask_strategy``, ``cluster_size``, ``mse_weight`` and ``separate_passes``.
    """

    export_fixed_length = True  # position embeddings cut to the example's patch grid; SSAMBA packs padding by sorting

    num_prefix_tokens: int

    def _init_pretext(self, embed_dim: int) -> None:
        """``mask_embed (1, 1, D)`` (zeros until the subclass's init) and the two heads Linear -> ReLU -> Linear."""
        c = self.config
        if c.mask_strategy not in ("cluster", "random"):
            raise ConfigError(f"{type(c).__name__}.mask_strategy must be 'cluster' or 'random', "
                              f"got {c.mask_strategy!r}")
        p = c.patch_f * c.patch_t
        self.mask_embed = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.disc_head = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, p))
        self.gen_head = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, p))

    def encode(self, features: Tensor, lengths: Tensor | None = None, mask_index: Tensor | None = None,
               return_hidden: bool = False) -> tuple[Tensor, list[Tensor], tuple[int, int], Tensor]:
        """``features (B, n_mels, L)`` -> ``(tokens (B, P + gf*gt, D) after the final norm, hidden states, grid,
        valid columns (B,))``; ``mask_index (B, M)`` patches are replaced by ``mask_embed`` (:meth:`_mask_tokens`);
        ``hidden`` (when asked for) holds the embedding output and the stream after every layer."""
        raise NotImplementedError(f"{type(self).__name__} must implement encode")

    # ---- shapes ---------------------------------------------------------------------------------------
    def grid(self, length: int) -> tuple[int, int]:
        """Patch grid ``(gf, gt)`` of ``length`` frames."""
        return self.patch_embed.grid(self.config.n_mels, int(length))

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Time columns whose patches start and end inside the valid frames (at least 1): ``(B,)``."""
        c = self.config
        return torch.clamp((torch.as_tensor(lengths) - c.patch_t) // c.tstride + 1, min=1).long()

    def _valid_columns(self, lengths: Tensor | None, batch: int, gt: int, device: torch.device) -> Tensor:
        if lengths is None:
            return torch.full((batch,), gt, dtype=torch.long, device=device)
        return self.output_lengths(lengths.to(device)).clamp(max=gt)

    def _check(self, features: Tensor) -> None:
        c, name = self.config, type(self).__name__
        if features.ndim != 3 or features.shape[1] != c.n_mels:
            raise AudioError(f"{name} expects features (B, {c.n_mels}, L), got shape {tuple(features.shape)}")
        if features.shape[-1] < c.patch_t:
            raise AudioError(f"{name} needs at least {c.patch_t} frames (one patch), got {features.shape[-1]}")

    def _pos_embed_for(self, grid: tuple[int, int]) -> Tensor:
        """``pos_embed`` for another grid: a shorter input takes the first columns, any other a bilinear resize."""
        stored, p = self.patch_embed.grid_size, self.num_prefix_tokens
        if grid == stored:
            return self.pos_embed
        if grid[1] <= stored[1] and grid[0] == stored[0]:
            pos = self.pos_embed[:, p:].reshape(1, stored[0], stored[1], -1)[:, :, :grid[1]]
            return torch.cat([self.pos_embed[:, :p], pos.reshape(1, grid[0] * grid[1], -1)], dim=1)
        return resample_pos_embed(self.pos_embed, stored, grid, p)

    def _mask_tokens(self, x: Tensor, mask_index: Tensor | None) -> Tensor:
        """Patch tokens ``(B, N, D)`` with those at ``mask_index (B, M)`` replaced by ``mask_embed``."""
        if mask_index is None:
            return x
        m = torch.zeros(x.shape[0], x.shape[1], 1, device=x.device, dtype=x.dtype)
        m.scatter_(1, mask_index.to(x.device)[..., None], 1.0)
        return x * (1.0 - m) + m * self.mask_embed.to(x.dtype)

    def _columns(self, tokens: Tensor, grid: tuple[int, int], valid: Tensor) -> Tensor:
        """``(B, P + gf*gt, D)`` -> ``(B, gt, D)``: the mean over frequency of each time column, zero past ``valid``."""
        b, d = tokens.shape[0], tokens.shape[-1]
        x = tokens[:, self.num_prefix_tokens:].reshape(b, grid[0], grid[1], d).mean(1)
        keep = torch.arange(grid[1], device=x.device)[None, :] < valid[:, None]
        return x * keep[..., None].to(x.dtype)

    def extract_features(self, x: Tensor, lengths: Tensor | None = None,
                         layers: list[int] | None = None) -> list[Tensor]:
        """Features ``(B, n_mels, L)`` (or a waveform ``(B, T)``) -> ``num_layers + 1`` hidden states ``(B, gt, D)``.

        Entry 0 is the embedding output, entry ``i`` layer ``i``'s output, the last one after the final norm; the
        ``gf`` patch tokens of each time column are averaged; ``layers`` picks entries by index. Positions past
        :meth:`output_lengths` are zero.
        """
        if x.ndim == 2:
            x, lengths = self.frontend(x, lengths)
        tokens, hidden, grid, valid = self.encode(x, lengths, return_hidden=True)
        states = hidden[:-1] + [tokens]
        if layers is not None:
            states = [states[i] for i in layers]
        return [self._columns(h, grid, valid) for h in states]

    # ---- pretext task ---------------------------------------------------------------------------------
    def _targets(self, features: Tensor) -> Tensor:
        """Flattened input patches ``(B, N, f*t)`` in token order (the official ``nn.Unfold``)."""
        c = self.config
        return F.unfold(features.unsqueeze(1), (c.patch_f, c.patch_t), stride=(c.fstride, c.tstride)).transpose(1, 2)

    def _draw_mask(self, grid: tuple[int, int], valid: Tensor, strategy: str, count: int,
                   cluster_size: tuple[int, int], generator: torch.Generator | None) -> Tensor:
        full = self.patch_embed.num_patches
        if not 1 <= count < full:
            raise ConfigError(f"cannot mask {count} patches: the model's grid of {self.config.max_length} frames has "
                              f"{full} patches (set num_mask_patches below that)")
        # shorter inputs mask the same fraction of their valid patches as the full grid (400 / 512 officially)
        m = max(1, min(count, math.floor(count / full * int(valid.min()) * grid[0])))
        return patch_mask_indices(grid, m, valid.cpu(), strategy=strategy, cluster_size=cluster_size,
                                  generator=generator)

    def _pass(self, features: Tensor, lengths: Tensor | None, targets: Tensor, heads: tuple[str, ...],
              mask_args: tuple, generator: torch.Generator | None) -> dict[str, Tensor]:
        grid = self.grid(features.shape[-1])
        valid = self._valid_columns(lengths, features.shape[0], grid[1], features.device)
        idx = self._draw_mask(grid, valid, *mask_args, generator).to(features.device)  # (B, M)
        tokens, _, _, _ = self.encode(features, lengths, mask_index=idx)
        masked = torch.gather(tokens, 1, (idx + self.num_prefix_tokens)[..., None].expand(-1, -1, tokens.shape[-1]))
        target = torch.gather(targets, 1, idx[..., None].expand(-1, -1, targets.shape[-1])).float()
        out: dict[str, Tensor] = {}
        if "nce" in heads:  # official mpc
            out["nce"], out["acc"] = masked_patch_info_nce(self.disc_head(masked).float(), target)
        if "mse" in heads:  # official mpg
            out["mse"] = masked_reconstruction_loss(self.gen_head(masked), target, kind="mse")
        return out

    def forward(self, features: Tensor, lengths: Tensor | None = None, *, objective: str = "joint",
                strategy: str | None = None, num_masked: int | None = None,
                cluster_size: tuple[int, int] | None = None, separate_passes: bool | None = None,
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Masked spectrogram patch modelling on ``features (B, n_mels, L)``: ``{"loss", "nce", "mse", "acc"}``.

        ``objective``: ``"joint"`` (``nce + mse_weight * mse``), ``"nce"`` or ``"mse"``; ``strategy``,
        ``num_masked``, ``cluster_size``, ``separate_passes`` override the config. ``eval()`` mode draws the masks
        from a fixed seed unless a ``generator`` is given.
        """
        c = self.config
        self._check(features)
        if objective not in ("joint", "nce", "mse"):
            raise ConfigError(f"{type(self).__name__} objective must be 'joint', 'nce' or 'mse', got {objective!r}")
        if generator is None and not self.training:
            generator = torch.Generator().manual_seed(0)
        mask_args = (strategy or c.mask_strategy, int(num_masked or c.num_mask_patches),
                     tuple(cluster_size or c.cluster_size))
        targets = self._targets(features)
        sep = c.separate_passes if separate_passes is None else separate_passes
        if objective != "joint":
            out = self._pass(features, lengths, targets, (objective,), mask_args, generator)
            out["loss"] = out[objective] * (c.mse_weight if objective == "mse" else 1.0)
        elif sep:
            out = {**self._pass(features, lengths, targets, ("nce",), mask_args, generator),
                   **self._pass(features, lengths, targets, ("mse",), mask_args, generator)}
        else:
            out = self._pass(features, lengths, targets, ("nce", "mse"), mask_args, generator)
        if objective == "joint":
            out["loss"] = out["nce"] + c.mse_weight * out["mse"]
        return {"loss": out.pop("loss"), **out}


# --------------------------------------------------------------------------------------------- tts
class TTSModel(AudioModel):
    """Acoustic model: ``forward(tokens (B, N), lengths (B,), ...) -> mel (B, n_mels, L) or codes`` plus
    durations; ``synthesize(...)`` for inference. ``vocab_size`` token ids, ``n_mels`` output bins."""

    family = "tts"
    required_attributes = ("config", "vocab_size")
    required_methods = ("forward", "synthesize")

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        return (torch.randint(1, self.vocab_size, (batch, length), generator=g),), {"lengths": _lengths(length, batch)}

    def check_outputs(self, args: tuple, kwargs: dict, out: Any) -> None:
        first = out[0] if isinstance(out, (tuple, list)) else out
        _expect(isinstance(first, Tensor) and first.shape[0] == args[0].shape[0], self,
                "the first output must be a batch-first tensor (mel or codes)")

    def _eval_forward(self, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
        """``forward`` in eval mode (dropout off), the training mode restored after: ``(mel, mel_lengths)`` (the
        first two outputs, per the contract). The ``synthesize`` of non-autoregressive models."""
        was = self.training
        self.eval()
        try:
            out = self(*args, **kwargs)
        finally:
            self.train(was)
        return out[0], out[1]

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "tokens") -> dict[str, Any]:
        """Non-autoregressive inference, ``synthesize(tokens (B, N), lengths (B,)) -> (mel (B, n_mels, L),
        mel_lengths (B,))``: dynamic batch, tokens and frames (``L`` follows the predicted durations in the
        graph). Autoregressive models override this (their decoding loop stops on data)."""
        if on != "tokens":
            raise ConfigError(f"{type(self).__name__} exports on token ids, got on={on!r}")
        n = int(length or 24)
        tokens = torch.randint(1, int(self.vocab_size), (batch, n), generator=torch.Generator().manual_seed(0))
        return {"example_inputs": (tokens, _lengths(n, batch)), "input_names": ["tokens", "lengths"],
                "output_names": ["mel", "mel_lengths"], "method": "synthesize",
                "dynamic_axes": {"tokens": {0: "batch", 1: "tokens"}, "lengths": {0: "batch"},
                                 "mel": {0: "batch", 2: "frames"}, "mel_lengths": {0: "batch"}}}


class VarianceTTSModel(TTSModel):
    """What the FastSpeech 2-style acoustic models share: ``forward(tokens, lengths, speaker=, alpha=,
    pitch_shift=, energy_scale=)`` returning ``mel`` and ``mel_lengths`` first; a config with HiFi-GAN's mel
    settings (``sample_rate, n_fft, hop_length, win_length, n_mels, f_min, f_max``), ``vocab_size`` and ``text``;
    ``pitch_stats`` / ``energy_stats`` buffers (``[mean, std]`` of ``ln F0`` and frame energy; std 0 = not set)."""

    def _token_lengths(self, tokens: Tensor, lengths: Tensor | None) -> Tensor:
        """Checks ``tokens (B, N)`` (ids in ``[0, vocab_size)``) and returns ``lengths (B,)`` (default: all ``N``)."""
        if tokens.ndim != 2:
            raise ConfigError(f"{type(self).__name__} takes token ids (B, N), got shape {tuple(tokens.shape)}")
        b, n = tokens.shape
        if lengths is None:
            lengths = torch.full((b,), n, dtype=torch.long, device=tokens.device)
        lengths = lengths.to(tokens.device).long()
        if lengths.shape != (b,) or bool((lengths < 1).any()) or bool((lengths > n).any()):
            raise ConfigError(f"lengths must be ({b},) in [1, {n}], got {lengths.tolist()}")
        if int(tokens.max()) >= self.vocab_size or int(tokens.min()) < 0:
            raise ConfigError(f"token ids must lie in [0, {self.vocab_size}), got [{int(tokens.min())}, "
                              f"{int(tokens.max())}]")
        return lengths

    def _controls(self, pitch_shift: float, energy_scale: float) -> tuple[float, float, float]:
        """``(pitch offset, energy gain, energy offset)`` in normalised units for the inference controls."""
        p_std = float(self.pitch_stats[1]) or 1.0
        e_mean, e_std = float(self.energy_stats[0]), float(self.energy_stats[1]) or 1.0
        # ln F0 + s ln2 / 12 shifts by s semitones; E * g in normalised units: z g + (g - 1) mean / std
        return pitch_shift * math.log(2.0) / 12.0 / p_std, energy_scale, (energy_scale - 1.0) * e_mean / e_std

    @torch.no_grad()
    def synthesize(self, tokens: Tensor, lengths: Tensor | None = None, alpha: float = 1.0, pitch_shift: float = 0.0,
                   energy_scale: float = 1.0, speaker: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Inference: ``(mel (B, n_mels, L), mel_lengths (B,))`` from predicted durations, pitch and energy."""
        return self._eval_forward(tokens, lengths, speaker=speaker, alpha=alpha, pitch_shift=pitch_shift,
                                  energy_scale=energy_scale)

    def mel_extractor(self) -> VocoderMel:
        """The front end whose log-mel this model predicts (training targets; HiFi-GAN's input)."""
        c = self.config
        return VocoderMel(c.sample_rate, c.n_fft, c.hop_length, c.win_length, c.n_mels, c.f_min, c.f_max)

    def input_spec(self) -> dict[str, Any]:
        c = self.config
        return {**super().input_spec(), "tokens": f"(B, N) ids of the {c.text.get('scheme', 'caller')!r} scheme",
                "output": f"log-mel (B, {c.n_mels}, L), hop {c.hop_length}", "hop_length": c.hop_length,
                "vocab_size": c.vocab_size}



@dataclass
class AutoregressiveTTSConfig:
    """The fields every autoregressive mel model's config shares (subclassed by each model's config): the stop /
    length guards of inference and HiFi-GAN's mel (:class:`audiozoo.dsp.VocoderMel` defaults), ``text`` scheme."""

    stop_token: bool = True  # False: no stop head (decoding runs to the length guard; the registry's tiny configs)
    # inference: stop when a stop probability >= stop_threshold; guards as espnet's maxlenratio / minlenratio
    stop_threshold: float = 0.5
    max_len_ratio: float = 10.0
    min_len_ratio: float = 0.0
    max_frames: int = 2000
    n_mels: int = 80
    sample_rate: int = 22050
    hop_length: int = 256
    n_fft: int = 1024
    win_length: int = 1024
    f_min: float = 0.0
    f_max: float = 8000.0
    text: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.stop_threshold < 1.0:
            raise ConfigError(f"stop_threshold must lie in (0, 1), got {self.stop_threshold}")
        if self.max_len_ratio <= 0 or self.max_frames < 1:
            raise ConfigError("max_len_ratio and max_frames must be positive")


class AutoregressiveTTSOutput(NamedTuple):
    """What an autoregressive mel model's teacher-forced ``forward`` returns (``mel`` first, per the tts contract).

    mel: ``(B, n_mels, L)`` after the post-net; padded frames at ``ln(1e-5)``.
    mel_lengths: ``(B,)`` valid frames (the targets').
    stop_logits: ``(B, L)`` stop-token logits (the target is 1 at each item's last frame; ``-inf`` without a
        stop head).
    mel_before: ``(B, n_mels, L)`` decoder output before the post-net.
    attention: ``(B, layers, heads, L, N)`` encoder-decoder attention weights when ``return_attention``.
    """

    mel: Tensor
    mel_lengths: Tensor
    stop_logits: Tensor
    mel_before: Tensor
    attention: Tensor | None


class AutoregressiveTTSModel(TTSModel):
    """What the autoregressive mel models share (Transformer TTS, Tacotron 2): a teacher-forced ``forward(tokens,
    lengths, mel=, mel_lengths=, return_attention=)`` whose output starts ``(mel, mel_lengths, stop_logits,
    mel_before, attention)``; ``synthesize`` decodes frame by frame until the stop token or a length guard; a config
    with HiFi-GAN's mel settings, ``vocab_size``, ``text`` and the guards ``stop_threshold, max_len_ratio,
    min_len_ratio, max_frames``; an optional ``postnet`` ``(mel, frame_mask) -> residual``. Only the text encoder
    exports: ``encode(tokens, lengths) -> (memory, mask)``."""

    autoregressive = True  # the tts task trains it with stop-token and (optionally) guided-attention terms
    log_floor = math.log(1e-5)  # HiFi-GAN's log-mel of silence: the value of frames past an item's length

    # the token checks and the mel front end of the FastSpeech family apply unchanged
    _token_lengths = VarianceTTSModel._token_lengths
    mel_extractor = VarianceTTSModel.mel_extractor

    def _target_lengths(self, tokens: Tensor, mel: Tensor | None, mel_lengths: Tensor | None) -> Tensor:
        """Checks the teacher-forcing target ``mel (B, n_mels, L)``; returns ``mel_lengths (B,)`` (default ``L``)."""
        name, n_mels = type(self).__name__, self.config.n_mels
        if mel is None:
            raise ConfigError(f"{name}.forward is the teacher-forced training pass and needs the target mel "
                              "(B, n_mels, L); call synthesize(tokens, lengths) for inference")
        if mel.ndim != 3 or mel.shape[0] != tokens.shape[0] or mel.shape[1] != n_mels:
            raise ConfigError(f"mel must be (B, {n_mels}, L) with B = {tokens.shape[0]}, got {tuple(mel.shape)}")
        if mel_lengths is None:
            return torch.full((mel.shape[0],), mel.shape[-1], dtype=torch.long, device=mel.device)
        return mel_lengths.to(mel.device).long()

    def _length_guards(self, tokens: Tensor, lengths: Tensor | None, threshold: float | None,
                       max_len_ratio: float | None, min_len_ratio: float | None, max_frames: int | None,
                       alpha: float = 1.0, pitch_shift: float = 0.0, energy_scale: float = 1.0
                       ) -> tuple[Tensor, float, Tensor, Tensor]:
        """``(token lengths (B,), stop threshold, max frames (B,), min frames (B,))`` of a synthesis: the
        arguments, else the config's. The tts pipeline's controls (``alpha``, ``pitch_shift``, ``energy_scale``)
        must stay neutral: an autoregressive model has no duration, pitch or energy input to scale."""
        c = self.config
        if alpha != 1.0 or pitch_shift != 0.0 or energy_scale != 1.0:
            raise ConfigError(f"{type(self).__name__} has no speed / pitch / energy controls (alpha, pitch_shift, "
                              "energy_scale); use a FastSpeech-family model for them")
        lengths = self._token_lengths(tokens, lengths)
        hi = c.max_len_ratio if max_len_ratio is None else float(max_len_ratio)
        lo = c.min_len_ratio if min_len_ratio is None else float(min_len_ratio)
        cap = int(c.max_frames if max_frames is None else max_frames)
        thr = c.stop_threshold if threshold is None else float(threshold)
        return lengths, thr, (lengths.float() * hi).long().clamp(1, cap), (lengths.float() * lo).long()

    def _finish_mel(self, mel_before: Tensor, mel_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder frames ``(B, n_mels, L)`` -> ``(mel after the post-net, mel before it)``, frames past
        ``mel_lengths`` zeroed for the post-net and set to :attr:`log_floor` in both outputs."""
        fmask = torch.arange(mel_before.shape[-1], device=mel_before.device)[None] >= mel_lengths[:, None]
        mel_before = mel_before.masked_fill(fmask[:, None], 0.0)
        post = getattr(self, "postnet", None)
        mel = mel_before if post is None else mel_before + post(mel_before, fmask)
        return mel.masked_fill(fmask[:, None], self.log_floor), mel_before.masked_fill(fmask[:, None], self.log_floor)

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        """Random tokens ``(B, length)`` and teacher-forcing mels of ``2 * length`` frames (the last item shorter)."""
        g = torch.Generator().manual_seed(seed)
        tokens = torch.randint(1, self.vocab_size, (batch, length), generator=g)
        mel = torch.randn(batch, self.n_mels, 2 * length, generator=g) - 4.0
        return (tokens,), {"lengths": _lengths(length, batch), "mel": mel, "mel_lengths": _lengths(2 * length, batch)}

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "encode") -> dict[str, Any]:
        """Only the text encoder exports: ``encode(tokens (B, N), lengths (B,)) -> (memory (B, N, D), mask)``.
        Decoding is an autoregressive loop that stops when the stop token fires, which a traced graph cannot
        hold; a runtime would drive a per-step decoder graph itself (not exported here)."""
        if on != "encode":
            raise ConfigError(f"{type(self).__name__} exports its encoder only (on='encode'), got on={on!r}: decoding "
                              "is an autoregressive loop that stops on data; export a FastSpeech-family model for "
                              "the whole text -> mel graph")
        n = int(length or 24)
        tokens = torch.randint(1, int(self.vocab_size), (batch, n), generator=torch.Generator().manual_seed(0))
        return {"example_inputs": (tokens, _lengths(n, batch)), "input_names": ["tokens", "lengths"],
                "output_names": ["memory", "memory_mask"], "method": "encode",
                "dynamic_axes": {"tokens": {0: "batch", 1: "tokens"}, "lengths": {0: "batch"},
                                 "memory": {0: "batch", 1: "tokens"}, "memory_mask": {0: "batch", 1: "tokens"}}}

    def input_spec(self) -> dict[str, Any]:
        c = self.config
        return {**TTSModel.input_spec(self), "tokens": f"(B, N) ids of the {c.text.get('scheme', 'caller')!r} "
                "scheme", "output": f"log-mel (B, {c.n_mels}, L), hop {c.hop_length}", "hop_length": c.hop_length,
                "vocab_size": c.vocab_size}

# --------------------------------------------------------------------------------------------- separate
class SeparatorModel(AudioModel):
    """``forward(mixture (B, C, T)) -> sources (B, S, C, T)``; ``sources`` names the S stems."""

    family = "separate"
    required_attributes = ("config", "sources", "sample_rate", "audio_channels")

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        return (0.1 * torch.randn(batch, self.audio_channels, length * 64, generator=g),), {}

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "audio") -> dict[str, Any]:
        """``mixture (B, C, T) -> sources (B, S, C, T)``, dynamic batch and samples; ``length`` in samples."""
        if on != "audio":
            raise ConfigError(f"{type(self).__name__} exports on audio, got on={on!r}")
        mix = 0.1 * torch.randn(batch, int(self.audio_channels), int(length or 4096))
        return {"example_inputs": (mix,), "input_names": ["mixture"], "output_names": ["sources"],
                "dynamic_axes": {"mixture": {0: "batch", 2: "samples"}, "sources": {0: "batch", 3: "samples"}}}

    def check_outputs(self, args: tuple, kwargs: dict, out: Any) -> None:
        b, c, t = args[0].shape
        _expect(_is_float(out) and tuple(out.shape) == (b, len(self.sources), c, t), self,
                f"separated shape {tuple(out.shape)}, expected {(b, len(self.sources), c, t)}")


# --------------------------------------------------------------------------------------------- generate
class GeneratorModel(AudioModel):
    """``generate(conditions, steps, guidance, seed) -> wav (B, T) or tokens``; ``forward`` is the training
    path (e.g. the denoiser / vector field)."""

    family = "generate"
    required_methods = ("forward", "generate")

    def check_outputs(self, args: tuple, kwargs: dict, out: Any) -> None:
        first = out[0] if isinstance(out, (tuple, list)) else out
        _expect(isinstance(first, Tensor), self, "forward must return a tensor")


# --------------------------------------------------------------------------------------------- seq2seq
class Seq2SeqModel(AudioModel):
    """Caption / ASR / speech translation: ``forward(features (B, F, L), lengths (B,), tokens (B, N)) -> logits
    (B, N, vocab)`` (teacher forcing: ``tokens`` are the decoder inputs, ``bos`` first, and ``logits[:, n]``
    predicts token ``n + 1``); ``generate(features, lengths, method='greedy'|'beam'|..., max_len=...) ->
    (tokens (B, N'), lengths (B,))`` without ``bos``/``eos``; retrieval models add ``score(audio, text)``.

    Speech models also carry ``frontend`` (waveform -> features) and ``tokenizer`` (an
    :class:`audiozoo.text.Tokenizer`, ids <-> text); ``F`` is ``feature_dim`` or ``config.n_mels``.
    """

    family = "asr"
    required_attributes = ("config", "vocab_size")
    required_methods = ("forward", "generate")

    def input_dim(self) -> int:
        return int(getattr(self, "feature_dim", None) or self.config.n_mels)

    def input_spec(self) -> dict[str, Any]:
        return {**super().input_spec(), "features": f"(B, {self.input_dim()}, L)", "vocab_size": int(self.vocab_size)}

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "encode") -> dict[str, Any]:
        """The speech encoder, ``encode``: ``features (B, F, L), lengths (B,) -> (memory (B, L', D),
        memory_lengths (B,))`` with dynamic batch and frames (front end and decoding loop stay outside). The
        example's last item is shorter than the others, so the padding path is the one traced."""
        if on not in ("encode", "features"):
            raise ConfigError(f"{type(self).__name__} exports its encoder (on='encode'), got {on!r}")
        n = int(length or 160)
        lengths = torch.full((batch,), n, dtype=torch.long)
        lengths[-1] = max(1, (3 * n) // 4)
        return {"example_inputs": (torch.randn(batch, self.input_dim(), n), lengths),
                "input_names": ["features", "lengths"], "output_names": ["memory", "memory_lengths"],
                "dynamic_axes": {"features": {0: "batch", 2: "frames"}, "lengths": {0: "batch"},
                                 "memory": {0: "batch", 1: "enc_frames"}, "memory_lengths": {0: "batch"}},
                "method": "encode"}

    def _init_speech_io(self, cfg: Any, default_tokenizer: Any) -> None:
        """The tokenizer (the config's saved symbol table, else ``default_tokenizer``, then recorded in the
        config so a checkpoint carries it), ``vocab_size``, ``sample_rate`` and the centred natural-log mel
        front end (``cfg.n_fft``, ``cfg.hop_length``, ``cfg.n_mels``, 0 Hz to Nyquist) of a speech model."""
        from ..dsp.mel import VocoderMel
        from ..text import Tokenizer

        self.tokenizer = Tokenizer.from_dict(cfg.tokenizer) if cfg.tokenizer is not None else default_tokenizer
        if cfg.tokenizer is None:  # saved checkpoints carry their symbol table (config.json), not a default
            cfg.tokenizer = self.tokenizer.to_dict()
        self.vocab_size = int(self.tokenizer.vocab_size)
        self.sample_rate = cfg.sample_rate
        self.frontend = VocoderMel(sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                                   win_length=cfg.n_fft, n_mels=cfg.n_mels, f_min=0.0, f_max=cfg.sample_rate / 2,
                                   center=True, log="ln")

    # ---- the encoder-decoder machinery every such model shares. A model implements ``encode(features, lengths)
    # -> (memory (B, L', D), lengths)``, ``decode(memory, memory_lengths, tokens) -> logits``,
    # ``decoder_state(memory, memory_lengths)`` (its incremental-decoding state: a KV cache, Mamba states...),
    # ``_step(tokens, state) -> (next-token logits (B, vocab), state)`` and ``_reorder(state, index)`` (beams);
    # a CTC branch is an optional ``ctc_head``.
    @property
    def bos_id(self) -> int:
        return int(self.tokenizer.bos_id)

    @property
    def eos_id(self) -> int:
        return int(self.tokenizer.eos_id)

    @property
    def blank_id(self) -> int:
        """The CTC blank: the tokenizer's ``<blank>`` if it has one, else ``<pad>`` (never a target)."""
        table = getattr(self.tokenizer, "table", None)
        blank = getattr(table, "blank_id", None) if table is not None else None
        return int(blank if blank is not None else self.tokenizer.pad_id)

    def ctc_log_probs(self, memory: Tensor) -> Tensor:
        """CTC head: ``memory (B, L', dim) -> log-probabilities (B, L', vocab)`` (float32)."""
        if getattr(self, "ctc_head", None) is None:
            raise ConfigError(f"{type(self).__name__} was built without a CTC head (ctc=False)")
        return self.ctc_head(memory).float().log_softmax(-1)

    def forward(self, features: Tensor, lengths: Tensor | None = None, tokens: Tensor | None = None,
                return_ctc: bool = False) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """Decoder logits ``(B, N, vocab)``; with ``return_ctc`` also the CTC log-probabilities ``(B, L', vocab)``
        and their lengths ``(B,)`` (one call, so a DDP-wrapped model trains both heads)."""
        if tokens is None:
            raise ConfigError(f"{type(self).__name__}.forward needs the decoder input tokens (B, N); use "
                              "generate() to decode")
        memory, mem_len = self.encode(features, lengths)
        logits = self.decode(memory, mem_len, tokens)
        if return_ctc:
            return logits, self.ctc_log_probs(memory), mem_len
        return logits

    @torch.no_grad()
    def generate(self, features: Tensor, lengths: Tensor | None = None, method: str = "greedy", beam_size: int = 4,
                 max_len: int | None = None, length_penalty: float = 1.0) -> tuple[Tensor, Tensor]:
        """Decode ``features (B, F, L)`` -> ``(tokens (B, N), lengths (B,))`` (no ``bos``/``eos``; pad 0).
        ``method``: ``"greedy"`` or ``"beam"`` (``beam_size``, ``length_penalty``); ``max_len`` defaults to
        ``config.max_target_len``."""
        memory, mem_len = self.encode(features, lengths)
        return self.generate_from_memory(memory, mem_len, method, beam_size, max_len, length_penalty)

    @torch.no_grad()
    def generate_from_memory(self, memory: Tensor, memory_lengths: Tensor, method: str = "greedy",
                             beam_size: int = 4, max_len: int | None = None, length_penalty: float = 1.0
                             ) -> tuple[Tensor, Tensor]:
        """:meth:`generate` from an encoder output ``(B, L', dim)`` (reuse one encoding for decoding and CTC)."""
        from ..nn.beam_search import beam_search, greedy_search

        state = self.decoder_state(memory, memory_lengths)
        max_len = self.config.max_target_len if max_len is None else int(max_len)
        b, pad_id = memory.shape[0], int(self.tokenizer.pad_id or 0)
        if method == "greedy":
            toks, lens, _ = greedy_search(self._step, state, b, self.bos_id, self.eos_id, max_len, pad_id=pad_id,
                                          device=memory.device)
        elif method == "beam":
            toks, lens, _ = beam_search(self._step, state, self._reorder, b, self.bos_id, self.eos_id, max_len,
                                        beam_size=beam_size, length_penalty=length_penalty, pad_id=pad_id,
                                        device=memory.device)
        else:
            raise ConfigError(f"unknown decoding method {method!r}; expected 'greedy' or 'beam'")
        return toks, lens

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        """Features of ``length`` frames (the last items shorter) and ``max(2, length // 8)`` decoder tokens."""
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, self.input_dim(), length, generator=g)
        tokens = torch.randint(0, self.vocab_size, (batch, max(2, length // 8)), generator=g)
        return (x,), {"lengths": _lengths(length, batch), "tokens": tokens}

    def check_outputs(self, args: tuple, kwargs: dict, out: Any) -> None:
        tokens = kwargs.get("tokens", args[-1])
        _expect(_is_float(out) and tuple(out.shape) == (*tokens.shape, self.vocab_size), self,
                f"logits shape {tuple(getattr(out, 'shape', ()))}, expected {(*tokens.shape, self.vocab_size)}")
        with torch.no_grad():
            gen = self.generate(args[0], kwargs.get("lengths"), max_len=3)
        _expect(isinstance(gen, tuple) and len(gen) == 2, self, "generate must return (tokens, lengths)")
        toks, lens = gen
        b = args[0].shape[0]
        _expect(not toks.is_floating_point() and toks.ndim == 2 and toks.shape[0] == b and lens.shape == (b,)
                and bool((lens <= min(3, toks.shape[1])).all()), self,
                f"generate(max_len=3) gave tokens {tuple(toks.shape)} and lengths {lens.tolist()}")


# --------------------------------------------------------------------------- embed
class EmbedderModel(AudioModel):
    """Utterance embedding (speaker encoders such as GE2E, audio/text embedders):
    ``forward(features (B, F, L), lengths (B,) | None) -> embeddings (B, embed_dim)``; ``frontend`` computes
    the features from a waveform; ``embed(wav, lengths)`` runs both (with any partial-window averaging)."""

    family = "embed"
    required_attributes = ("config", "embed_dim", "frontend")

    def input_dim(self) -> int:
        return int(getattr(self, "feature_dim", None) or self.config.n_mels)

    def input_spec(self) -> dict[str, Any]:
        return {**super().input_spec(), "features": f"(B, {self.input_dim()}, L)", "embed_dim": int(self.embed_dim)}

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(batch, self.input_dim(), length, generator=g).abs(),), {"lengths": _lengths(length, batch)}

    def check_outputs(self, args: tuple, kwargs: dict, out: Any) -> None:
        b = args[0].shape[0]
        _expect(_is_float(out) and tuple(out.shape) == (b, self.embed_dim), self,
                f"embeddings shape {tuple(getattr(out, 'shape', ()))}, expected {(b, self.embed_dim)}")


FAMILY_BASES: dict[str, type[AudioModel]] = {
    "classify": ClassifierModel, "ssl": SSLModel, "tts": TTSModel, "vocoder": VocoderModel, "codec": CodecModel,
    "separate": SeparatorModel, "enhance": EnhancerModel, "generate": GeneratorModel, "caption": Seq2SeqModel,
    "asr": Seq2SeqModel, "s2st": Seq2SeqModel, "transcribe": TranscriberModel, "embed": EmbedderModel,
}


def example_inputs(family: str, model: nn.Module, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
    """``model.example_inputs(length, batch, seed)``, checking that ``model`` is of ``family``'s base class."""
    base = FAMILY_BASES.get(family)
    if base is None or not isinstance(model, base):
        raise ContractError(f"{type(model).__name__} is registered as {family!r} but does not inherit "
                            f"{getattr(base, '__name__', '?')} (audiozoo.models.contracts)")
    return model.example_inputs(length, batch=batch, seed=seed)
