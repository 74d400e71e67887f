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
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from ..errors import AudiozooError, ConfigError

__all__ = [
    "FAMILY_BASES", "AudioModel", "ClassifierModel", "CodecModel", "ContractError", "EmbedderModel", "EnhancerModel",
    "frontend_config",
    "GeneratorModel", "SSLModel", "SeparatorModel", "Seq2SeqModel", "TTSModel", "TranscriberModel",
    "VocoderModel", "example_inputs",
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
