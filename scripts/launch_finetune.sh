#!/usr/bin/env bash
# Finetune phi-1-base (the preset's finetune.init: pretrain/final, or the paper's pretrain/checkpoints/checkpoint-24000) on CodeExercises on one 8-GPU node (the paper: 7 hours) or on
# several nodes.
#   scripts/launch_finetune.sh [RUN_DIR] [--resume false] [--finetune.key value ...]
# Runs scripts/launch_pretrain.sh with STAGE=finetune (run_finetune with the preset's `finetune:` section), so
# it takes the same environment variables: PRESET, NGPUS, LAUNCHER, DS_CONFIG (passed as --finetune.deepspeed),
# HOSTFILE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT, DRY_RUN, PYTHON; see that script's header.
# On several nodes RUN_DIR (with pretrain/final) must be on a filesystem shared by all of them.
set -euo pipefail
STAGE=finetune exec "$(dirname "$0")/launch_pretrain.sh" "$@"
