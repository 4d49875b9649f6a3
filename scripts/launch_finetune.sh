#!/usr/bin/env bash
# Finetune phi-1-base (RUN_DIR/pretrain/final) on CodeExercises on one 8-GPU node (the paper: 7 hours).
#   scripts/launch_finetune.sh [RUN_DIR] [--finetune.key value ...]
# Same environment variables as launch_pretrain.sh (PRESET, NGPUS, LAUNCHER).
set -euo pipefail
STAGE=finetune exec "$(dirname "$0")/launch_pretrain.sh" "$@"
