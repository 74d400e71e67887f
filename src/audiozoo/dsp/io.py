"""Audio I/O: load, save, inspect and resample audio.

This is the numpy boundary of :mod:`audiozoo.dsp`: files are decoded with ``soundfile`` (libsndfile:
wav, flac, ogg/vorbis, opus, mp3 where libsndfile >= 1.1 supports it) and resampled with ``soxr`` at
"HQ" quality; everything returned is a ``torch.Tensor``.

Conventions (see docs/DESIGN.md, "Tensors"):

* waveforms are float in [-1, 1]; integer PCM is scaled by 2**(bits-1) (libsndfile's and librosa's
  convention: int16 -32768 -> -1.0). Float files are returned as stored (never clipped).
* multi-channel audio is channel-first ``(C, T)``; ``mono=True`` averages channels into ``(T,)``.
* every problem a user can cause raises :class:`audiozoo.errors.AudioError` naming the file/argument.
"""

from __future__ import annotations

import io
import math
import os
import struct
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
import soundfile as sf
import soxr
import torch

from audiozoo.errors import AudioError

AudioSource = Union[str, os.PathLike, bytes, bytearray, IO[bytes], np.ndarray, torch.Tensor]

__all__ = ["AudioFileStream", "AudioSource", "audio_info", "load_audio", "resample", "save_audio"]

# Integer PCM full-scale values: x / 2**(bits-1) maps to [-1, 1) as libsndfile/librosa do.
_INT_SCALE = {np.dtype(np.int8): 128.0, np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}
_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


# ----------------------------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------------------------


def _check_rate(value: Any, what: str) -> int:
    """Validate a sample rate: a positive integer (floats with an integral value are accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise AudioError(f"{what} must be a positive integer number of Hz, got {value!r}")
    if not math.isfinite(float(value)) or float(value) <= 0 or float(value) != int(value):
        raise AudioError(f"{what} must be a positive integer number of Hz, got {value!r}")
    return int(value)


def _as_numpy(wav: Any, name: str) -> np.ndarray:
    """A tensor/array/sequence as a numpy array (tensors are detached and moved to the CPU)."""
    if isinstance(wav, torch.Tensor):
        if wav.is_complex():
            raise AudioError(f"{name}: complex tensors are not audio (dtype {wav.dtype})")
        t = wav.detach().cpu()
        if t.dtype in (torch.float16, torch.bfloat16):  # numpy has no bfloat16
            t = t.float()
        return t.numpy()
    if isinstance(wav, np.ndarray):
        return wav
    try:
        return np.asarray(wav)
    except Exception as e:  # ragged lists and the like
        raise AudioError(f"{name}: cannot be converted to an array ({e})") from e


def _to_float_audio(arr: np.ndarray, name: str, np_dtype: np.dtype) -> np.ndarray:
    """Validate an in-memory waveform and return it as float ``(C, T)``.

    Accepts (T,) or (C, T) float or int8/uint8/int16/int32 PCM. Rejects other dtypes (bool, complex,
    object, strings, int64: ambiguous bit depth), >2 dims, (T, C)-looking layouts, empty and
    non-finite signals.
    """
    if arr.dtype.kind == "c":
        raise AudioError(f"{name}: complex arrays are not audio (dtype {arr.dtype})")
    if arr.dtype.kind == "f":
        out = arr.astype(np_dtype, copy=False)
    elif arr.dtype in _INT_SCALE:
        out = arr.astype(np_dtype) / np_dtype.type(_INT_SCALE[arr.dtype])
    elif arr.dtype == np.uint8:  # 8-bit WAV convention: unsigned, 128 = silence
        out = (arr.astype(np_dtype) - 128.0) / 128.0
    else:
        raise AudioError(
            f"{name}: unsupported sample dtype {arr.dtype}; expected float, or int8/uint8/int16/int32 PCM"
            + (" (int64 has no defined full scale: convert to int16/int32 or float)" if arr.dtype.kind in "iu" else "")
        )
    if out.ndim == 1:
        out = out[None, :]
    elif out.ndim != 2:
        raise AudioError(f"{name}: expected shape (T,) or (C, T), got {out.ndim} dims {tuple(arr.shape)}")
    if out.size == 0:
        raise AudioError(f"{name}: zero-length audio (shape {tuple(arr.shape)})")
    if out.shape[0] > out.shape[1]:
        raise AudioError(
            f"{name}: shape {tuple(arr.shape)} looks like (T, C); audiozoo is channel-first (C, T): pass arr.T"
        )
    _check_finite(out, name)
    return out


def _check_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        n_nan, n_inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
        raise AudioError(f"{name}: contains non-finite samples ({n_nan} NaN, {n_inf} Inf)")


# ----------------------------------------------------------------------------------------------
# reading files
# ----------------------------------------------------------------------------------------------


def _wav_truncation(f: IO[bytes]) -> str | None:
    """Return a message if ``f`` is a RIFF/WAVE stream whose data chunk runs past the end of the file.

    libsndfile silently shortens such files (it reads what is there), so a download cut in half would
    load as valid audio; we refuse it instead. Streaming writers declare size 0 or 0xFFFFFFFF: ignored.
    """
    start = f.tell()
    try:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        f.seek(0, io.SEEK_END)
        end = f.tell()
        pos = start + 12
        while pos + 8 <= end:
            f.seek(pos)
            cid, size = struct.unpack("<4sI", f.read(8))
            if cid == b"data":
                avail = end - pos - 8
                if size not in (0, 0xFFFFFFFF) and size > avail:
                    return f"truncated WAV: data chunk declares {size} bytes but only {avail} are present"
                return None
            pos += 8 + size + (size & 1)  # chunks are word-aligned
        if pos < end:  # the file stops inside a chunk header before any data chunk: libsndfile reads 0 frames
            return f"truncated WAV: the file ends {end - pos} bytes into a chunk header, before the data chunk"
        return None
    finally:
        f.seek(start)


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"'{os.fspath(source)}'"
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return f"<file object {getattr(source, 'name', type(source).__name__)}>"


def _open(source: Any) -> tuple[IO[bytes], str, bool]:
    """Open a path / bytes / file-like source as a seekable binary stream, checking it is non-empty.

    Returns (stream, description, whether we opened it and must close it).
    """
    desc = _describe(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise AudioError(f"audio file not found: {desc}")
        if not path.is_file():
            raise AudioError(f"not a regular file: {desc}")
        if path.stat().st_size == 0:
            raise AudioError(f"empty audio file (0 bytes): {desc}")
        return open(path, "rb"), desc, True  # noqa: SIM115 - closed by the caller
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise AudioError("empty audio bytes (0 bytes)")
        return io.BytesIO(bytes(source)), desc, True
    if hasattr(source, "read"):
        seekable = getattr(source, "seekable", lambda: False)()
        if not seekable:  # libsndfile needs to seek: buffer the rest of the stream
            data = source.read()
            if not data:
                raise AudioError(f"empty audio stream: {desc}")
            return io.BytesIO(data), desc, True
        return source, desc, False
    raise AudioError(
        f"unsupported audio source of type {type(source).__name__}: expected a path, bytes, a binary file "
        "object, a numpy array or a torch tensor"
    )


def _soundfile(stream: IO[bytes], desc: str) -> sf.SoundFile:
    trunc = _wav_truncation(stream)
    if trunc:
        raise AudioError(f"{trunc}: {desc}")
    try:
        return sf.SoundFile(stream)
    except (RuntimeError, TypeError, ValueError) as e:  # LibsndfileError is a RuntimeError
        msg = str(e).split(": ", 1)[-1] if "Error opening" in str(e) else str(e)
        raise AudioError(f"cannot read {desc} as audio (not a supported or intact audio file: {msg})") from e


def _read_file(source: Any, offset: float, duration: float | None, np_dtype: np.dtype) -> tuple[np.ndarray, int, str]:
    """Decode ``source`` into float ``(C, T)`` starting ``offset`` s in, at most ``duration`` s long."""
    stream, desc, owned = _open(source)
    try:
        with _soundfile(stream, desc) as f:
            sr, total = f.samplerate, f.frames
            if total == 0:
                raise AudioError(f"audio file has zero frames: {desc}")
            start = int(round(offset * sr))
            if start >= total:
                raise AudioError(f"offset {offset} s is past the end of {desc} ({total / sr:.3f} s long)")
            want = -1 if duration is None else max(1, int(round(duration * sr)))
            try:
                if start:
                    f.seek(start)
                data = f.read(want, dtype=np_dtype.name, always_2d=True)
            except (RuntimeError, ValueError) as e:
                raise AudioError(f"cannot decode {desc} (truncated or corrupt file?): {e}") from e
            expected = total - start if want < 0 else min(want, total - start)
            # MP3 lengths come from a header estimate; only a clear shortfall means truncation there.
            slack = int(0.01 * total) + 1152 if f.format == "MP3" else 0
            if data.shape[0] < expected - slack:
                raise AudioError(
                    f"truncated or corrupt audio: {desc} declares {expected} frames from the offset but only "
                    f"{data.shape[0]} could be decoded"
                )
    finally:
        if owned:
            stream.close()
    if data.shape[0] == 0:
        raise AudioError(f"no audio frames could be read from {desc}")
    out = np.ascontiguousarray(data.T)
    _check_finite(out, desc)
    return out, sr, desc


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------


def load_audio(
    source: AudioSource,
    sample_rate: int | None = None,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    array_sample_rate: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Load audio from a file, bytes, a binary file object, or an in-memory array.

    Args:
        source: path (str / PathLike), encoded ``bytes``, a binary file object, or a waveform
            (numpy array / torch tensor, shape (T,) or (C, T); int PCM is scaled to [-1, 1]).
        sample_rate: resample (soxr "HQ") to this rate; ``None`` keeps the native rate.
        mono: average channels to shape (T,); otherwise return (C, T) (C = 1 for mono files).
        offset: start reading this many seconds in (at the source's native rate).
        duration: read at most this many seconds (``None``: to the end).
        dtype: ``torch.float32`` (default) or ``torch.float64``.
        array_sample_rate: the sample rate of ``source`` when it is an array/tensor (required then;
            not allowed for files, whose rate is read from the header).

    Returns:
        ``(wav, sr)``: float tensor (T,) if ``mono`` else (C, T), in [-1, 1] for PCM sources (float
        files and resampling overshoot are not clipped), and its sample rate.

    Raises:
        AudioError: missing/empty/truncated/unrecognised file, zero frames, NaN/Inf samples, bad
            dtype or shape, non-positive sample rates, offset past the end.
    """
    if dtype not in (torch.float32, torch.float64):
        raise AudioError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    np_dtype = np.dtype(np.float32 if dtype == torch.float32 else np.float64)
    if sample_rate is not None:
        sample_rate = _check_rate(sample_rate, "sample_rate")
    if not (isinstance(offset, (int, float)) and math.isfinite(offset) and offset >= 0):
        raise AudioError(f"offset must be a finite number of seconds >= 0, got {offset!r}")
    if duration is not None and not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
        raise AudioError(f"duration must be a positive number of seconds or None, got {duration!r}")

    if isinstance(source, (np.ndarray, torch.Tensor)):
        if array_sample_rate is None:
            raise AudioError("load_audio(array): pass the array's rate as array_sample_rate=<Hz>")
        sr = _check_rate(array_sample_rate, "array_sample_rate")
        wav = _to_float_audio(_as_numpy(source, "audio array"), "audio array", np_dtype)
        start = int(round(offset * sr))
        if start >= wav.shape[1]:
            raise AudioError(f"offset {offset} s is past the end of the array ({wav.shape[1] / sr:.3f} s)")
        stop = None if duration is None else start + max(1, int(round(duration * sr)))
        wav = wav[:, start:stop]
    else:
        if array_sample_rate is not None:
            raise AudioError("array_sample_rate is only for array/tensor sources; files carry their rate")
        wav, sr, _ = _read_file(source, float(offset), duration, np_dtype)

    if mono and wav.shape[0] > 1:
        wav = wav.mean(axis=0, keepdims=True)  # average before resampling: C times less work
    if sample_rate is not None and sample_rate != sr:
        wav = resample(wav, sr, sample_rate)
        sr = sample_rate
    out = torch.from_numpy(np.ascontiguousarray(wav, dtype=np_dtype))
    return (out[0] if mono else out), sr


class AudioFileStream:
    """A long audio file read on demand, as ``(C, N)`` float32 at a target rate and channel count.

    For inputs too long to hold (a 10-minute stereo song is 212 MB at 44.1 kHz float32): windows ``x[..., a:b]``
    are decoded block by block (``soundfile``), mixed to ``channels`` (a mono file is duplicated, more channels
    are averaged, as the in-memory path of the pipelines) and resampled with soxr's streaming resampler, whose
    output equals :func:`resample` on the whole signal exactly (same "HQ" filter; tested). Windows must move
    forward (``a`` never below an earlier ``a``): only ``[a, end of the last window)`` is kept, so memory is
    one window plus one decoding block whatever the file's length.

    ``shape[-1]`` is the length :func:`resample` would give (``floor(frames * rate / file_rate + 0.5)``), known
    before decoding; formats without an exact frame count (MP3) are refused: load them with :func:`load_audio`.
    Use it as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int | None = None, channels: int | None = None,
                 block: int = 65536):
        self._stream, self.desc, _ = _open(path)
        try:
            self._file = _soundfile(self._stream, self.desc)
        except AudioError:
            self._stream.close()
            raise
        f = self._file
        if f.format == "MP3":
            self.close()
            raise AudioError(f"{self.desc}: MP3 has no exact frame count to stream; load it whole with load_audio")
        if f.frames == 0:
            self.close()
            raise AudioError(f"audio file has zero frames: {self.desc}")
        self.file_rate = int(f.samplerate)
        self.sample_rate = self.file_rate if sample_rate is None else _check_rate(sample_rate, "sample_rate")
        self.channels = int(f.channels) if channels is None else int(channels)
        if self.channels < 1:
            raise AudioError(f"channels must be >= 1, got {channels}")
        self.frames = int(f.frames)
        n = self.frames if self.sample_rate == self.file_rate else \
            math.floor(self.frames * self.sample_rate / self.file_rate + 0.5)
        self.shape = (self.channels, n)
        self._block = int(block)
        self._resampler = None if self.sample_rate == self.file_rate else soxr.ResampleStream(
            self.file_rate, self.sample_rate, self.channels, dtype="float32", quality="HQ")
        self._buf = np.zeros((0, self.channels), np.float32)  # (frames, C) from absolute index self._start
        self._start = 0
        self._read = 0  # file frames decoded so far

    def __enter__(self) -> AudioFileStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._file.close()
        self._stream.close()

    def _decode(self) -> bool:
        """Append one decoded (and resampled) block to the buffer; False once the file is exhausted."""
        if self._read >= self.frames:
            return False
        try:
            data = self._file.read(min(self._block, self.frames - self._read), dtype="float32", always_2d=True)
        except (RuntimeError, ValueError) as e:
            raise AudioError(f"cannot decode {self.desc} (truncated or corrupt file?): {e}") from e
        if data.shape[0] == 0:
            raise AudioError(f"truncated or corrupt audio: {self.desc} declares {self.frames} frames but only "
                             f"{self._read} could be decoded")
        self._read += data.shape[0]
        _check_finite(data, self.desc)
        if data.shape[1] != self.channels:
            data = np.repeat(data.mean(axis=1, keepdims=True), self.channels, axis=1)
        if self._resampler is not None:
            data = self._resampler.resample_chunk(data, last=self._read >= self.frames)
        self._buf = np.concatenate([self._buf, data]) if len(self._buf) else data
        return True

    def __getitem__(self, index: Any) -> torch.Tensor:
        """``x[..., a:b]`` -> ``(C, b - a)`` float32 (steps of 1 only; ``a`` never below an earlier ``a``)."""
        sl = index[-1] if isinstance(index, tuple) else index
        if not isinstance(sl, slice) or sl.step not in (None, 1):
            raise AudioError("AudioFileStream takes windows x[..., a:b] only")
        a, b, _ = sl.indices(self.shape[1])
        if a < self._start:
            raise AudioError(f"AudioFileStream reads forward only: window start {a} is before {self._start}")
        while self._start + len(self._buf) < b and self._decode():
            pass
        self._buf = self._buf[a - self._start:]
        self._start = a
        out = self._buf[: max(0, b - a)]
        if out.shape[0] < b - a:  # soxr's flush gives floor(n r + 0.5) frames, as its one-shot call (tested)
            raise AudioError(f"{self.desc}: resampled stream ended at {self._start + out.shape[0]} of "
                             f"{self.shape[1]} frames")
        return torch.from_numpy(np.ascontiguousarray(out.T))


def save_audio(
    path: str | os.PathLike, wav: np.ndarray | torch.Tensor, sample_rate: int, subtype: str | None = None
) -> Path:
    """Write a waveform to ``path``; the container comes from the extension (.wav, .flac, .ogg, ...).

    Args:
        path: output file; missing parent folders are created.
        wav: (T,) or (C, T) float in [-1, 1] (or int PCM), tensor or array.
        sample_rate: positive integer Hz.
        subtype: libsndfile subtype (``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``...); ``None`` uses the
            format's default (PCM_16 for wav/flac, VORBIS for ogg).

    Nothing is clipped silently: samples outside [-1, 1] raise unless the subtype is ``"FLOAT"`` or
    ``"DOUBLE"`` (wav only), which store them exactly.

    Returns:
        The path written, as a ``Path``.
    """
    path = Path(path)
    sample_rate = _check_rate(sample_rate, "sample_rate")
    ext = path.suffix.lstrip(".").upper()
    formats = sf.available_formats()
    fmt = {"OPUS": "OGG", "AIF": "AIFF"}.get(ext, ext)
    if fmt not in formats:
        raise AudioError(
            f"cannot infer an audio format from the extension of '{path}'; supported: "
            + ", ".join(sorted(f".{k.lower()}" for k in formats))
        )
    if subtype is None:
        subtype = "OPUS" if ext == "OPUS" else sf.default_subtype(fmt)
    subtype = subtype.upper()
    if not sf.check_format(fmt, subtype):
        raise AudioError(f"subtype {subtype!r} is not valid for {fmt} files ('{path}')")
    np_dtype = np.dtype(np.float64 if subtype == "DOUBLE" else np.float32)
    arr = _to_float_audio(_as_numpy(wav, f"audio for '{path}'"), f"audio for '{path}'", np_dtype)
    peak = max(float(arr.max()), -float(arr.min()))  # no |arr| temporary: outputs can be long
    if subtype not in _FLOAT_SUBTYPES and peak > 1.0:
        raise AudioError(
            f"audio for '{path}' peaks at {peak:.4g}, outside [-1, 1], and {subtype} would clip it; scale it "
            "(e.g. wav / wav.abs().max()), clamp it explicitly, or save as .wav with subtype='FLOAT'"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sf.write(path, arr.T, sample_rate, subtype=subtype, format=fmt)
    except (RuntimeError, ValueError, TypeError) as e:
        raise AudioError(f"cannot write '{path}' as {fmt}/{subtype}: {e}") from e
    return path


def audio_info(path: str | os.PathLike | bytes | IO[bytes]) -> dict[str, Any]:
    """Header information of an audio file without decoding it.

    Returns:
        dict with ``sample_rate`` (int), ``num_frames`` (int, per channel), ``channels`` (int),
        ``duration`` (float seconds), ``format`` (e.g. "WAV") and ``subtype`` (e.g. "PCM_16").
    """
    stream, desc, owned = _open(path)
    try:
        with _soundfile(stream, desc) as f:
            return {
                "sample_rate": int(f.samplerate),
                "num_frames": int(f.frames),
                "channels": int(f.channels),
                "duration": f.frames / f.samplerate,
                "format": f.format,
                "subtype": f.subtype,
            }
    finally:
        if owned:
            stream.close()


def resample(wav: np.ndarray | torch.Tensor, orig_sr: int, target_sr: int) -> np.ndarray | torch.Tensor:
    """Resample along the last axis with soxr at "HQ" quality (any leading dims, e.g. (B, C, T)).

    Returns the same type as the input (a tensor keeps its dtype and device; float16/bfloat16 are
    processed in float32). Not differentiable: this runs in numpy at the I/O boundary. Equal rates
    return the input unchanged.
    """
    orig_sr = _check_rate(orig_sr, "orig_sr")
    target_sr = _check_rate(target_sr, "target_sr")
    is_tensor = isinstance(wav, torch.Tensor)
    arr = _as_numpy(wav, "resample input")
    if arr.dtype not in (np.float32, np.float64):
        raise AudioError(f"resample expects float32/float64 audio, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise AudioError(f"resample: zero-length audio (shape {tuple(arr.shape)})")
    if orig_sr == target_sr:
        return wav
    _check_finite(arr, "resample input")
    lead, n = arr.shape[:-1], arr.shape[-1]
    # soxr wants (frames, channels): fold all leading dims into channels, one call for the batch.
    frames = np.ascontiguousarray(arr.reshape(-1, n).T)
    out = soxr.resample(frames, orig_sr, target_sr, quality="HQ")
    out = np.ascontiguousarray(out.T).reshape(*lead, out.shape[0])
    if is_tensor:
        return torch.from_numpy(out).to(device=wav.device, dtype=wav.dtype)
    return out
