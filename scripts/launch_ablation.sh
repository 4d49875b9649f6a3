#!/usr/bin/env bash
# The paper-scale ablation (phi-1-small on every arm under every seed, paper.yaml's `ablation` section) on one GPU
# node or several, through the pretraining launcher:
#   scripts/launch_ablation.sh [RUN_DIR] [--resume false] [--ablation.key value ...]
# scripts/launch_pretrain.sh checks the nodes, GPUs and launcher and builds the command (its DRY_RUN); this script
# swaps the entry every rank runs for one that calls run_ablation with the preset's `ablation` section and the
# overrides. Every rank trains each (arm, seed) in turn; global rank 0 first writes the tokenizer and the arms'
# token files under RUN_DIR/ablation while the others wait for its manifest, and scores the models at the end.
# RUN_DIR must hold the finished stages the arms name (corpus, dedup, synth/textbooks, ...) and, on several
# nodes, be on a filesystem they all share.
#
# Environment: as scripts/launch_pretrain.sh (PRESET default paper, NGPUS, LAUNCHER, HOSTFILE, NNODES,
# NODE_RANK, MASTER_ADDR, MASTER_PORT, PYTHON), and
#   DS_CONFIG    DeepSpeed JSON, passed as --ablation.deepspeed        default: the preset's ablation.deepspeed
#   DRY_RUN      1: print the command that would be exec'd (one shell-quoted line) and exit 0
# Bad input exits 2 with the pretraining launcher's message on stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
err=$(mktemp); trap 'rm -f "$err"' EXIT
fix() { sed -e 's/launch_pretrain:/launch_ablation:/' -e 's/^launching pretrain /launching ablation /' -e 's/--pretrain\./--ablation./g' "$err" >&2; }
rc=0; line=$(DRY_RUN=1 STAGE=pretrain CHECK_STAGE=ablation bash "$here/launch_pretrain.sh" "$@" 2>"$err") || rc=$?
fix
(( rc == 0 )) || exit "$rc"
eval "CMD=($line)"   # the %q-quoted words printed by the dry run

# The pretraining entry and its arguments (pretrain PRESET RUN_DIR overrides...) become the ablation's.
for i in "${!CMD[@]}"; do [[ ${CMD[i]} == */.launch_entry.py || ${CMD[i]} == .launch_entry.py ]] && break; done
[[ ${CMD[i]} == *.launch_entry.py && ${CMD[i+1]:-} == pretrain ]] || { echo "launch_ablation: error: unexpected command from launch_pretrain.sh: $line" >&2; exit 2; }
RUN_DIR=${CMD[i+2+1]}
ENTRY=${CMD[i]%.launch_entry.py}.launch_ablation.py
CMD[i]=$ENTRY; CMD[i+1]=ablation
for ((j = i + 4; j < ${#CMD[@]}; j++)); do [[ ${CMD[j]} == --pretrain.deepspeed ]] && CMD[j]=--ablation.deepspeed; done

if [[ -n ${DRY_RUN:-} && ${DRY_RUN} != 0 ]]; then
  printf '%q' "${CMD[0]}"; printf ' %q' "${CMD[@]:1}"; printf '\n'
  exit 0
fi

cd "$here/.."
mkdir -p "$RUN_DIR"
tmp=$ENTRY.$$.$(hostname).tmp
cat > "$tmp" <<'PYEOF'
import sys
from phi1_nb.core import load_config
from phi1_nb.ablation import run_ablation
stage, preset, run_dir, *overrides = sys.argv[1:]
run_ablation(run_dir, **load_config(preset, overrides).section(stage))
PYEOF
mv -f "$tmp" "$ENTRY"
exec "${CMD[@]}"
