"""Write the manifests of the super-resolution recipe from the real 16 kHz speech in ``../shared/data``.

The same split as the vocoder recipes (``recipes/vocoder/prepare_speech.py``, reused here): train / valid = the
8 SiSec 2011 clean sources (seconds 0-8.5 / 8.5-10 of each), test (held out: speakers and recordings never
seen in training) = the 6 CMU ARCTIC utterances + the 3 LibriSpeech clips of librosa's examples. No real
48 kHz speech exists here, so the recipe super-resolves 16 kHz speech from 6-12 kHz inputs.

Usage: ``python recipes/superres/prepare.py [--out cache/superres_speech] [--repeat 16]``.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    if "--out" not in sys.argv:
        sys.argv += ["--out", "cache/superres_speech"]
    runpy.run_path(str(Path(__file__).resolve().parents[1] / "vocoder" / "prepare_speech.py"), run_name="__main__")
