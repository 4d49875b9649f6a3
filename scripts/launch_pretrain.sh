#!/usr/bin/env bash
# Pretrain phi-1 on one 8-GPU node with DeepSpeed ZeRO (the paper: 8 A100s, < 4 days).
#   scripts/launch_pretrain.sh [RUN_DIR] [--pretrain.key value ...]
# Env: PRESET (paper), NGPUS (8), LAUNCHER (deepspeed | torchrun | accelerate; default deepspeed when installed).
# Every rank runs run_pretrain with the preset's `pretrain:` section; rank 0 packs the data while the others
# wait; the Trainer reads the DeepSpeed JSON named by `pretrain.deepspeed` (configs/ds_zero2.json in paper.yaml).
# Needs the gpu extra: pip install -e ".[gpu]"  (deepspeed, flash-attn).
set -euo pipefail
STAGE=${STAGE:-pretrain}
PRESET=${PRESET:-paper}
NGPUS=${NGPUS:-8}
RUN_DIR=${1:-runs/$PRESET}; shift || true
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v .venv/bin/python || command -v python)}
ENTRY=$(mktemp --suffix=.py)
trap 'rm -f "$ENTRY"' EXIT
cat > "$ENTRY" <<'PYEOF'
import sys
from phi1_nb.core import load_config
stage, preset, run_dir, *overrides = sys.argv[1:]
cfg = load_config(preset, overrides)
if stage == "pretrain":
    from phi1_nb.train import run_pretrain as run
else:
    from phi1_nb.finetune import run_finetune as run
run(run_dir, **cfg.section(stage))
PYEOF
LAUNCHER=${LAUNCHER:-$("$PY" -c 'import importlib.util as u; print("deepspeed" if u.find_spec("deepspeed") else "torchrun")')}
echo "launching $STAGE on $NGPUS GPUs with $LAUNCHER: preset=$PRESET run_dir=$RUN_DIR $*"
case "$LAUNCHER" in
  deepspeed)  exec "$PY" -m deepspeed.launcher.runner --num_gpus "$NGPUS" --no_local_rank "$ENTRY" "$STAGE" "$PRESET" "$RUN_DIR" "$@" ;;
  torchrun)   exec "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NGPUS" "$ENTRY" "$STAGE" "$PRESET" "$RUN_DIR" "$@" ;;
  accelerate) exec "$PY" -m accelerate.commands.launch --multi_gpu --num_processes "$NGPUS" "$ENTRY" "$STAGE" "$PRESET" "$RUN_DIR" "$@" ;;
  *) echo "unknown LAUNCHER=$LAUNCHER (deepspeed | torchrun | accelerate)" >&2; exit 2 ;;
esac
