#!/usr/bin/env bash
# Reproduces models/tiny-moe.gguf (and models/tiny-moe-heldout.jsonl) from scratch: data preparation,
# BPE vocabulary, training (about an hour on one core of this 2-core machine), GGUF export.
# Recipe and figures: docs/tiny-moe.md. Needs (Debian 12):
#   apt-get install python3-torch python3-doc adwaita-icon-theme tango-icon-theme breeze-icon-theme iso-codes
#   apt-get install libopenblas0-pthread   # optional: torch's generic BLAS is ~18x slower
# and `npm ci` (node_modules: the tokenizer, the GGUF writer, the npm-package-json source).
# An interrupted run resumes from train/runs/tiny/ckpt.pt when started again (--fresh: start over).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${MOET_PYTHON:-/usr/bin/python3}"
node --import tsx train/prepare.ts
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 nice -n 10 "$PY" train/train.py --run train/runs/tiny --threads 1 "$@"
node --import tsx train/export.ts --export train/runs/tiny/export --out models/tiny-moe.gguf
