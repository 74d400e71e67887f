"""Synthetic English speech with exactly known text: espeak-ng (and flite, festival) reading real sentences.

Sentences come from a freely licensed English text installed by name from Debian:

* ``wordnet`` (default, package ``wordnet-base``): the example sentences quoted in WordNet 3.0 glosses
  (tens of thousands of short, natural sentences; WordNet 3.0 license, BSD-like).
* ``fortunes`` (package ``fortunes-min``): the BSD fortune cookie files (BSD license).

Each item: a wav, the exact ``text`` given to the synthesiser, espeak-ng's IPA ``phonemes`` for it and
the ``speaker`` (voice id such as ``espeak:en-gb+f3``, ``flite:slt`` or ``festival:kal_diphone``).

Festival voices (``festival:NAME``, installed on demand from Debian) add voices built from recordings of
real people: residual-excited LPC diphone voices (kal, ked, Italian lp / pc, Czech dita / krb / machac / ph,
Finnish lj / mv), the Russian unit-selection voice ``msu_ru_nsh_clunits`` and the HTS voice of ARCTIC's slt.
The non-English ones read the English sentences with their own language's letter-to-sound rules: accented,
partly wrong words, but the timbre and prosody of another real speaker (what speaker-variety uses want).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from ..sampler import deterministic_split
from .base import Builder, Context, Option, Task, apt_install, require_tool, run_tool, tool_version

TEXT_SOURCES = {
    # name: (Debian package, files, license line)
    "wordnet": (
        "wordnet-base",
        [f"/usr/share/wordnet/data.{pos}" for pos in ("noun", "verb", "adj", "adv")],
        "WordNet 3.0 (c) 2006 Princeton University, WordNet 3.0 license (permissive, BSD-like: use, copy, "
        "modify and distribute with the copyright notice). Sentences: the quoted usage examples of the glosses.",
    ),
    "fortunes": (
        "fortunes-min",
        [f"/usr/share/games/fortunes/{n}" for n in ("fortunes", "literature", "riddles")],
        "BSD fortune(6) data files (Debian fortunes-min), BSD license (c) The Regents of the University "
        "of California.",
    ),
}

# Several espeak-ng English accents and voice variants (+mN / +fN change pitch, formants, breathiness)
# for speaker variety; flite adds four CMU voices (clustergen slt/rms/awb, diphone kal16).
ESPEAK_MULTI = ("en-us", "en-gb", "en-us+m3", "en-us+f2", "en-gb+f3", "en-gb-scotland+m4", "en-gb-x-rp+f4",
                "en-029+m2", "en-us+m7", "en-gb+f5")
FLITE_MULTI = ("slt", "rms", "awb", "kal16")
# festival voice name -> Debian package (`text2wave -eval "(voice_NAME)"`); a voice not installed is installed
# on demand. Left out: upc_ca_ona_hts (text2wave segfaults on English text), the NSK Indic voices (they need
# their scripts' text).
FESTIVAL_VOICES = {
    "kal_diphone": "festvox-kallpc16k", "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts", "lp_diphone": "festvox-italp16k",
    "pc_diphone": "festvox-itapc16k", "czech_dita": "festvox-czech-dita", "czech_krb": "festvox-czech-krb",
    "czech_machac": "festvox-czech-machac", "czech_ph": "festvox-czech-ph", "msu_ru_nsh_clunits": "festvox-ru",
    "suo_fi_lj_diphone": "festvox-suopuhe-lj", "hy_fi_mv_diphone": "festvox-suopuhe-mv",
}
FESTIVAL_DIR = Path("/usr/share/festival/voices")


def ensure_festival_voices(names: Sequence[str], feature: str) -> None:
    """Install festival's ``text2wave`` and the festival voices ``names`` (keys of ``FESTIVAL_VOICES``) that are
    missing, from Debian (``apt_install``: root + apt-get, or a clear error naming the package)."""
    if shutil.which("text2wave") is None:
        apt_install("festival", f"{feature} with festival voices")
    for name in names:
        if not any(FESTIVAL_DIR.glob(f"*/{name}")):
            apt_install(FESTIVAL_VOICES[name], f"{feature} voice festival:{name}")


ALLOWED = re.compile(r"^[A-Za-z][A-Za-z ,.;:'?!-]*$")


def clean_sentence(s: str, min_words: int = 4, max_words: int = 25) -> str | None:
    """Normalise one candidate sentence, or None when it is unsuitable.

    Kept: ASCII letters, spaces and plain punctuation (no digits, symbols, brackets or quotes, whose
    spoken form a synthesiser would have to guess), ``min_words``..``max_words`` words. The first
    letter is capitalised and a final period added when there is no final punctuation.
    """
    s = re.sub(r"\s*--\s*", ", ", s.replace("`", "'"))
    s = re.sub(r"\s+", " ", s).strip().strip("'").strip()
    s = re.sub(r" ([,.;:?!])", r"\1", s)
    if not s or not s.isascii() or not ALLOWED.match(s):
        return None
    if "''" in s or " '" in s or "' " in s:  # leftover quote marks, not apostrophes
        return None
    n = len(s.split())
    if not min_words <= n <= max_words:
        return None
    s = s[0].upper() + s[1:]
    if s[-1] in ",;:-":
        s = s[:-1].rstrip()
    if s[-1] not in ".?!":
        s += "."
    return s


def wordnet_sentences(files: list[str]) -> list[str]:
    out = []
    for fn in files:
        with open(fn, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or " | " not in line:  # license header / malformed
                    continue
                gloss = line.split(" | ", 1)[1]
                out += re.findall(r'"([^"]+)"', gloss)
    return out


def fortune_sentences(files: list[str]) -> list[str]:
    out = []
    for fn in files:
        text = Path(fn).read_text(encoding="utf-8", errors="replace")
        for cookie in re.split(r"^%\s*$", text, flags=re.M):
            lines = [ln for ln in cookie.splitlines() if not ln.strip().startswith("--")]  # attributions
            joined = " ".join(ln.strip() for ln in lines).strip()
            if not joined:
                continue
            if len(joined.split()) <= 25:
                out.append(joined)
            else:  # too long as a whole: its sentences may still do
                out += re.split(r"(?<=[.?!])\s+", joined)
    return out


def load_sentences(source: str) -> list[str]:
    """Cleaned, de-duplicated sentences of a text source, in sorted (seed-independent) order."""
    package, files, _ = TEXT_SOURCES[source]
    if not all(os.path.isfile(f) for f in files):
        apt_install(package, f"speech-synth --text {source}")
        if not all(os.path.isfile(f) for f in files):
            raise DataError(f"package {package} is installed but {files} are missing")
    raw = wordnet_sentences(files) if source == "wordnet" else fortune_sentences(files)
    seen: dict[str, str] = {}
    for s in raw:
        c = clean_sentence(s)
        if c is not None:
            seen.setdefault(c.lower(), c)
    return sorted(seen.values())


def _espeak_voices() -> tuple[set[str], set[str]]:
    """Known espeak-ng voice names/languages and variant names (for validating --voices)."""
    def names(out: str) -> set[str]:
        got = set()
        for line in out.splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 5:
                got |= {cols[1].lower(), cols[3].lower(), cols[4].lower(), cols[4].split("/")[-1].lower()}
        return got

    return names(run_tool(["espeak-ng", "--voices"], "espeak-ng")), names(
        run_tool(["espeak-ng", "--voices=variant"], "espeak-ng"))


def resolve_voices(spec: str) -> list[str]:
    """``single`` / ``multi`` / a comma list (``en-gb+f3,flite:slt``) -> voice ids ``engine:name``."""
    if spec == "single":
        return ["espeak:en-us"]
    if spec == "multi":
        voices = [f"espeak:{v}" for v in ESPEAK_MULTI]
        if shutil.which("flite"):
            voices += [f"flite:{v}" for v in FLITE_MULTI]
        return voices
    voices = []
    for v in (x.strip() for x in spec.split(",")):
        if not v:
            continue
        engine, _, name = v.rpartition(":")
        engine = engine or "espeak"
        if engine not in ("espeak", "flite", "festival") or not name:
            raise ConfigError(f"--voices: bad voice {v!r}; use 'single', 'multi' or e.g. "
                              "'en-gb+f3,flite:slt,festival:kal_diphone'")
        voices.append(f"{engine}:{name}")
    if not voices:
        raise ConfigError("--voices: no voice given")
    return voices


class SpeechSynthBuilder(Builder):
    name = "speech-synth"
    description = ("Synthetic English speech (espeak-ng, flite, festival) of real sentences, with exact text and "
                   "phonemes.")
    license = "See 'Text source' above for the sentences; the synthesised audio is generated by this project."
    options = (
        Option("hours", float, 0.1, "target total duration in hours (e.g. 0.05 to several)"),
        Option("voices", str, "single", "'single' (espeak-ng en-us), 'multi' (10 espeak-ng English "
               "variants + 4 flite voices when installed) or a comma list like "
               "'en-gb+f3,flite:slt,festival:ked_diphone' "
               f"(festival voices: {', '.join(FESTIVAL_VOICES)})"),
        Option("sample_rate", int, 22050, "output sample rate (espeak-ng renders 22050 Hz, flite 16000 Hz)"),
        Option("text", str, "wordnet", "sentence source", choices=tuple(TEXT_SOURCES)),
        Option("seed", int, 0, "sentence order and split seed"),
        Option("limit", int, None, "stop after this many items (small test builds)"),
    )
    stat_keys = ("speaker",)

    def prepare(self, ctx: Context) -> None:
        o = ctx.opts
        if not (o["hours"] and o["hours"] > 0):
            raise ConfigError(f"--hours must be > 0, got {o['hours']}")
        if o["limit"] is not None and o["limit"] < 1:
            raise ConfigError(f"--limit must be >= 1, got {o['limit']}")
        if o["sample_rate"] < 8000:
            raise ConfigError(f"--sample-rate must be >= 8000 Hz, got {o['sample_rate']}")
        require_tool("espeak-ng", "speech-synth")
        voices = resolve_voices(o["voices"])
        if any(v.startswith("flite:") for v in voices):
            require_tool("flite", "speech-synth with flite voices", "flite")
            known_flite = set(run_tool(["flite", "-lv"], "flite").split(":")[-1].split())
            bad = [v for v in voices if v.startswith("flite:") and v[6:] not in known_flite]
            if bad:
                raise ConfigError(f"--voices: unknown flite voice(s) {bad}; flite has {sorted(known_flite)}")
        festival = [v[9:] for v in voices if v.startswith("festival:")]
        if festival:
            unknown = [f for f in festival if f not in FESTIVAL_VOICES]
            if unknown:
                raise ConfigError(f"--voices: unknown festival voice(s) {unknown}; known: {list(FESTIVAL_VOICES)}")
            ensure_festival_voices(festival, "speech-synth")
        langs, variants = _espeak_voices()
        for v in voices:
            if v.startswith("espeak:"):
                base, _, var = v[7:].partition("+")
                if base.lower() not in langs or (var and var.lower() not in variants):
                    raise ConfigError(f"--voices: espeak-ng has no voice {v[7:]!r} (see espeak-ng --voices)")
        ctx.extra["voices"] = voices
        sentences = load_sentences(o["text"])
        rng = np.random.default_rng(o["seed"])
        ctx.extra["sentences"] = [sentences[i] for i in rng.permutation(len(sentences))]

    def tasks(self, ctx: Context):
        voices = ctx.extra["voices"]
        for i, text in enumerate(ctx.extra["sentences"]):
            # round-robin over voices: every speaker gets the same share of the corpus
            yield Task(f"{i:06d}", {"text": text, "voice": voices[i % len(voices)]})

    def should_stop(self, ctx: Context, items: list[dict[str, Any]]) -> bool:
        if ctx.opts["limit"] is not None and len(items) >= ctx.opts["limit"]:
            return True
        # running total (items only grows): O(1) per call instead of re-summing thousands of items
        n, total = ctx.extra.get("counted", (0, 0.0))
        total += sum(it["duration"] for it in items[n:])
        ctx.extra["counted"] = (len(items), total)
        return total >= ctx.opts["hours"] * 3600

    def fingerprint(self, ctx: Context) -> dict[str, Any]:
        # 'multi' depends on whether flite is installed: record the voices actually used
        return {"voices": ctx.extra["voices"]}

    def progress(self, ctx: Context, tasks: Any) -> tuple[float | None, str]:
        if ctx.opts["limit"] is not None:
            return ctx.opts["limit"], "item"
        return round(ctx.opts["hours"] * 3600), "s"

    def progress_step(self, ctx: Context, entry: dict[str, Any] | None) -> float:
        if ctx.opts["limit"] is not None:
            return 1
        return entry["duration"] if entry else 0

    def make_item(self, ctx: Context, task: Task) -> dict[str, Any] | None:
        from ...dsp.io import load_audio, resample

        text, voice = task.data["text"], task.data["voice"]
        engine, name = voice.split(":", 1)
        with tempfile.TemporaryDirectory(prefix="azsynth") as tmp:
            raw = os.path.join(tmp, "raw.wav")
            if engine == "espeak":
                # one call writes the wav and prints the IPA of exactly what it spoke
                ipa = run_tool(["espeak-ng", "-v", name, "-w", raw, "--ipa", "--stdin"], "espeak-ng", input=text)
            else:
                txt = os.path.join(tmp, "text.txt")
                Path(txt).write_text(text, encoding="utf-8")
                if engine == "flite":
                    run_tool(["flite", "-voice", name, "-f", txt, "-o", raw], "flite")
                else:
                    run_tool(["text2wave", "-eval", f"(voice_{name})", txt, "-o", raw], "festival text2wave")
                # flite's / festival's phone sets are not IPA: transcribe with espeak-ng's US English instead
                ipa = run_tool(["espeak-ng", "-q", "-v", "en-us", "--ipa", "--stdin"], "espeak-ng", input=text)
            wav, sr = load_audio(raw)
        if wav.numel() == 0 or float(wav.abs().max()) == 0.0:
            return None
        sr_out = ctx.opts["sample_rate"]
        if sr != sr_out:
            wav = resample(wav, sr, sr_out)
        peak = float(wav.abs().max())
        if peak > 0.99:  # resampling overshoot: scale rather than clip
            wav = wav * (0.99 / peak)
        rel = ctx.write_audio(f"wavs/{task.id}.wav", wav, sr_out)
        return {
            "audio_filepath": rel,
            "duration": round(wav.shape[-1] / sr_out, 6),
            "text": text,
            "phonemes": " ".join(ipa.split()),
            "speaker": voice,
        }

    def split(self, ctx: Context, items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        return deterministic_split(items, {"train": 0.9, "valid": 0.05, "test": 0.05}, seed=ctx.opts["seed"],
                                   stratify="speaker")

    def extra_stats(self, ctx: Context, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"words": sum(len(it["text"].split()) for it in items),
                "sentences_available": len(ctx.extra["sentences"]), "exhausted": len(items) == len(
                    ctx.extra["sentences"]) and not self.should_stop(ctx, items)}

    def readme_body(self, ctx: Context, stats: dict[str, Any]) -> str:
        package, files, lic = TEXT_SOURCES[ctx.opts["text"]]
        flite = tool_version(["flite", "--version"]) if shutil.which("flite") else "not installed"
        fest = ""
        if any(v.startswith("festival:") for v in ctx.extra["voices"]):
            fest = (f", festival (`{tool_version(['festival', '--version'])}`; non-English voices read the English "
                    "text by their own language's rules, so their `phonemes` are further from what they say)")
        return (
            "## Provenance\n\n"
            f"Speech synthesised by `{tool_version(['espeak-ng', '--version'])}` and flite (`{flite}`){fest}, voices: "
            + ", ".join(f"`{v}`" for v in ctx.extra["voices"])
            + " (assigned round-robin). Audio resampled to "
            f"{ctx.opts['sample_rate']} Hz (soxr HQ); flite voices are 16 kHz, so they hold no energy above "
            "8 kHz. `text` is exactly the input of the synthesiser; `phonemes` is espeak-ng's IPA for that "
            "text (`--ipa`, the voice's own accent for espeak-ng voices; `en-us` for flite voices, which "
            "pronounce with their own lexicon, so there it is an approximation).\n\n"
            f"## Text source\n\n`{ctx.opts['text']}`: Debian package `{package}` ({', '.join(files)}). "
            f"{lic} Sentences were filtered to ASCII letters and plain punctuation (no digits or symbols), "
            "4-25 words, de-duplicated, capitalised, then shuffled with the seed. Split 90/5/5 % "
            "train/valid/test per speaker, by a hash of the file name."
            + ("\n\nThe text source ran out before the requested hours." if stats.get("exhausted") else "")
        )
