#!/usr/bin/env bash
# Pretrain phi-1 on one 8-GPU node (the paper: 8 A100s, < 4 days) or on several nodes, with DeepSpeed ZeRO.
#   scripts/launch_pretrain.sh [RUN_DIR] [--resume false] [--pretrain.key value ...]
# RUN_DIR (default runs/<preset name>) is relative to the repository root; the `--section.key value` overrides go to
# load_config(PRESET, overrides) as on the `phi1` command line (e.g. --pretrain.max_steps 24000), each typed like the
# preset's value. --resume false discards the stage's checkpoints and starts afresh (the same spelling as
# `phi1 pretrain --resume false`; it is --<stage>.resume false); without it the newest complete checkpoint is resumed,
# and one written under other parameters or inputs is refused with a message naming them.
# Before any process starts, the overrides' types, effective_batch % (micro_batch_size x GPUs x nodes) and the
# DeepSpeed JSON are checked (exit 2, one line): a mistake costs a second, not the packing.
# Works on CPU too (LAUNCHER=torchrun NGPUS=2: two gloo processes, tests/test_distributed.py).
#
# Every rank runs run_pretrain (STAGE=finetune: run_finetune) with the preset's section of that name. Global
# rank 0 packs the data into RUN_DIR/<stage>/data while the other ranks poll for its manifest, so on several
# nodes RUN_DIR must be on a filesystem shared by all of them (it also holds the checkpoints, and the small
# entry script RUN_DIR/.launch_entry.py that every rank runs); the checkout and its .venv must be at the same
# path on every node. The Trainer reads the DeepSpeed JSON named by `<stage>.deepspeed` (configs/ds_zero2.json
# in paper.yaml); its `auto` batch fields are filled from micro_batch_size and effective_batch, whose
# accumulation steps follow the world size (effective_batch must be a multiple of micro_batch_size x GPUs).
# Needs the gpu extra: pip install -e ".[gpu]"  (deepspeed, flash-attn).
#
# Environment:
#   PRESET       preset name in configs/ (or a YAML path)                         default: paper
#   NGPUS        GPUs (processes) per node                 default: 8; with HOSTFILE, the fewest slots of its hosts
#   LAUNCHER     deepspeed | torchrun | accelerate         default: deepspeed when installed, else torchrun
#   DS_CONFIG    DeepSpeed JSON, passed as --<stage>.deepspeed (an explicit --<stage>.deepspeed argument wins)
#                                                          default: the preset's <stage>.deepspeed
#   HOSTFILE     DeepSpeed hostfile for several nodes: one `hostname slots=N` line per node, in rank order;
#                blank lines and lines starting with # are skipped                        default: one node
#   NNODES       nodes to use                              default: the hosts in HOSTFILE, else 1
#   NODE_RANK    this node's rank, 0..NNODES-1; required by torchrun/accelerate on several nodes (run the
#                script once on every node); deepspeed starts every node itself (pdsh over ssh) and ignores it
#   MASTER_ADDR  address of the rank-0 node                default: the first host of HOSTFILE (required
#                                                          without one for torchrun/accelerate on several nodes)
#   MASTER_PORT  rendezvous port on MASTER_ADDR            default: 29500
#   DRY_RUN      1: print the command that would be exec'd (one shell-quoted line) and exit 0
#   PYTHON       the interpreter                           default: .venv/bin/python, else python on PATH
#   STAGE        pretrain | finetune (scripts/launch_finetune.sh sets finetune)           default: pretrain
# Bad input (missing hostfile, malformed hostfile line, NGPUS above a host's slots, missing NODE_RANK, unknown
# LAUNCHER, missing DS_CONFIG or preset) exits 2 with a message on stderr.
set -euo pipefail

die() { echo "launch_${STAGE:-pretrain}: error: $*" >&2; exit 2; }
# posint NAME: the variable NAME must hold an integer >= 1 (normalised: 08 -> 8)
posint() { [[ ${!1} =~ ^[0-9]+$ ]] && (( 10#${!1} >= 1 )) || die "$1=${!1}: must be a positive integer"; printf -v "$1" %d "$((10#${!1}))"; }

STAGE=${STAGE:-pretrain}
[[ $STAGE == pretrain || $STAGE == finetune ]] || die "STAGE=$STAGE: must be pretrain or finetune"
PRESET=${PRESET:-paper}
RUN_DIR=${PRESET##*/}; RUN_DIR=runs/${RUN_DIR%.y*ml}   # default: runs/<preset name>
if [[ $# -gt 0 && $1 != -* ]]; then RUN_DIR=$1; shift; fi
CHECK_STAGE=${CHECK_STAGE:-$STAGE}   # the config section the run reads (scripts/launch_ablation.sh: ablation)
PASS=()   # the overrides, with --resume V spelled as the stage's resume key
for a in "$@"; do
  case "$a" in
    --force) die "--force is not an option: a fresh start is --resume false (as on the phi1 command line)" ;;
    --resume=*) PASS+=("--$CHECK_STAGE.resume" "${a#--resume=}") ;;
    --resume) PASS+=("--$CHECK_STAGE.resume") ;;
    *) PASS+=("$a") ;;
  esac
done
set -- ${PASS[@]+"${PASS[@]}"}
CALLER_PWD=$PWD
cd "$(dirname "$0")/.."

# A file path as given from the caller's directory (made absolute), else relative to the repository root.
resolve() {
  local p=$1
  if [[ $p == /* ]]; then [[ -f $p ]] && { echo "$p"; return; }
  elif [[ -f $CALLER_PWD/$p ]]; then (cd "$(dirname "$CALLER_PWD/$p")" && echo "$PWD/$(basename "$p")"); return
  elif [[ -f $p ]]; then echo "$p"; return; fi
  return 1
}

if [[ $PRESET == *.yaml || $PRESET == *.yml ]]; then
  p=$(resolve "$PRESET") || die "PRESET=$PRESET: not found (looked in the current directory and the repository root)"
  PRESET=$p
elif [[ ! -f ${PHI1_CONFIGS:-configs}/$PRESET.yaml ]]; then
  die "PRESET=$PRESET: no ${PHI1_CONFIGS:-configs}/$PRESET.yaml"
fi

OVERRIDES=()
if [[ -n ${DS_CONFIG:-} ]]; then
  DS=$(resolve "$DS_CONFIG") || die "DS_CONFIG=$DS_CONFIG: not found (looked in the current directory and the repository root)"
  [[ -r $DS ]] || die "DS_CONFIG=$DS_CONFIG: not readable"
  OVERRIDES=("--$STAGE.deepspeed" "$DS")
fi

if [[ -n ${PYTHON:-} ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=$PWD/.venv/bin/python
else PY=$(command -v python) || die "no python: set PYTHON"; fi
LAUNCHER=${LAUNCHER:-$("$PY" -c 'import importlib.util as u; print("deepspeed" if u.find_spec("deepspeed") else "torchrun")')}
case "$LAUNCHER" in deepspeed|torchrun|accelerate) ;; *) die "unknown LAUNCHER=$LAUNCHER (deepspeed | torchrun | accelerate)" ;; esac

# --- nodes: HOSTFILE (DeepSpeed format) or NNODES/NODE_RANK/MASTER_ADDR ---
HOSTS=() SLOTS=()
if [[ -n ${HOSTFILE:-} ]]; then
  HF=$(resolve "$HOSTFILE") || die "HOSTFILE=$HOSTFILE: not found (looked in the current directory and the repository root)"
  [[ -r $HF ]] || die "HOSTFILE=$HOSTFILE: not readable"
  n=0
  while IFS= read -r line || [[ -n $line ]]; do
    n=$((n + 1))
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*(#.*)?$ ]] && continue
    [[ $line =~ ^[[:space:]]*([^[:space:]#]+)[[:space:]]+slots=([0-9]+)[[:space:]]*(#.*)?$ ]] \
      || die "HOSTFILE=$HOSTFILE line $n: expected 'hostname slots=N', got '$line'"
    host=${BASH_REMATCH[1]} slots=$((10#${BASH_REMATCH[2]}))
    (( slots > 0 )) || die "HOSTFILE=$HOSTFILE line $n: $host has slots=0"
    for h in "${HOSTS[@]}"; do [[ $h != "$host" ]] || die "HOSTFILE=$HOSTFILE line $n: host $host listed twice"; done
    HOSTS+=("$host") SLOTS+=("$slots")
  done < "$HF"
  (( ${#HOSTS[@]} > 0 )) || die "HOSTFILE=$HOSTFILE lists no hosts"
  NNODES=${NNODES:-${#HOSTS[@]}}
  posint NNODES
  (( NNODES <= ${#HOSTS[@]} )) || die "NNODES=$NNODES but HOSTFILE=$HOSTFILE lists only ${#HOSTS[@]} hosts"
  if [[ -z ${NGPUS:-} ]]; then
    NGPUS=${SLOTS[0]}
    for ((i = 1; i < NNODES; i++)); do if (( SLOTS[i] < NGPUS )); then NGPUS=${SLOTS[i]}; fi; done
  fi
  MASTER_ADDR=${MASTER_ADDR:-${HOSTS[0]}}
  MULTI=1
else
  NNODES=${NNODES:-1}
  posint NNODES
  MULTI=$(( NNODES > 1 ))
fi
NGPUS=${NGPUS:-8}
posint NGPUS
for ((i = 0; i < ${#HOSTS[@]} && i < NNODES; i++)); do
  (( NGPUS <= SLOTS[i] )) || die "NGPUS=$NGPUS but host ${HOSTS[i]} has slots=${SLOTS[i]} in HOSTFILE=$HOSTFILE"
done
MASTER_PORT=${MASTER_PORT:-29500}
posint MASTER_PORT
if (( MULTI )); then
  if [[ $LAUNCHER == deepspeed ]]; then
    [[ -n ${HOSTFILE:-} ]] || die "LAUNCHER=deepspeed on NNODES=$NNODES nodes needs HOSTFILE (lines 'hostname slots=N')"
  else
    [[ -n ${NODE_RANK:-} ]] || die "NODE_RANK is required for LAUNCHER=$LAUNCHER on $NNODES nodes: run the script on every node with NODE_RANK=0..$((NNODES - 1))"
    [[ $NODE_RANK =~ ^[0-9]+$ ]] && (( 10#$NODE_RANK < NNODES )) || die "NODE_RANK=$NODE_RANK: must be 0..$((NNODES - 1))"
    NODE_RANK=$((10#$NODE_RANK))
    [[ -n ${MASTER_ADDR:-} ]] || die "MASTER_ADDR (the rank-0 node) is required for LAUNCHER=$LAUNCHER on $NNODES nodes without HOSTFILE"
  fi
fi

# --- the run's own preconditions, before any process starts: typed overrides, the batch split, the DeepSpeed JSON ---
CHECK=$("$PY" - "$CHECK_STAGE" "$PRESET" "$NGPUS" "$NNODES" ${OVERRIDES[@]+"${OVERRIDES[@]}"} "$@" <<'PYEOF' 2>&1
import sys
from pathlib import Path
from phi1_nb.core import ConfigError, load_config
stage, preset, ngpus, nnodes, *over = sys.argv[1:]
try: s = load_config(preset, over).section(stage)
except ConfigError as e: sys.exit(f"{e}")
mb, eb = s.get("micro_batch_size"), s.get("effective_batch")
if isinstance(mb, int) and isinstance(eb, int) and (mb < 1 or eb % (mb * int(ngpus) * int(nnodes))):
    sys.exit(f"{stage}.effective_batch={eb} is not a multiple of micro_batch_size x GPUs x nodes = {mb} x {ngpus} x {nnodes}")
if (ds := s.get("deepspeed")) and not Path(ds).exists(): sys.exit(f"{stage}.deepspeed={ds}: no such file")
PYEOF
) || die "${CHECK##*$'\n'}"

# --- the command ---
ENTRY=$RUN_DIR/.launch_entry.py
ARGS=("$ENTRY" "$STAGE" "$PRESET" "$RUN_DIR" ${OVERRIDES[@]+"${OVERRIDES[@]}"} "$@")
case "$LAUNCHER" in
  deepspeed)
    CMD=("$PY" -m deepspeed.launcher.runner)
    if (( MULTI )); then
      CMD+=(--hostfile "$HF" --num_nodes "$NNODES" --num_gpus "$NGPUS" --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT")
    else
      CMD+=(--num_gpus "$NGPUS")
    fi
    CMD+=(--no_local_rank) ;;
  torchrun)
    CMD=("$PY" -m torch.distributed.run)
    if (( MULTI )); then
      CMD+=(--nnodes "$NNODES" --node_rank "$NODE_RANK" --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" --nproc_per_node "$NGPUS")
    else
      CMD+=(--standalone --nproc_per_node "$NGPUS")
    fi ;;
  accelerate)   # --num_processes counts the processes of all machines
    CMD=("$PY" -m accelerate.commands.launch --multi_gpu --num_processes "$((NGPUS * NNODES))")
    if (( MULTI )); then
      CMD+=(--num_machines "$NNODES" --machine_rank "$NODE_RANK" --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT")
    fi ;;
esac
CMD+=("${ARGS[@]}")

echo "launching $STAGE on $NNODES node(s) x $NGPUS GPUs with $LAUNCHER: preset=$PRESET run_dir=$RUN_DIR${OVERRIDES[*]+ ${OVERRIDES[*]}}${*+ $*}" >&2
if [[ -n ${DRY_RUN:-} && ${DRY_RUN} != 0 ]]; then
  printf '%q' "${CMD[0]}"; printf ' %q' "${CMD[@]:1}"; printf '\n'
  exit 0
fi

# The entry every rank runs; in RUN_DIR so that every node sees it (written atomically: on several nodes each
# torchrun/accelerate launch writes the same file).
mkdir -p "$RUN_DIR"
tmp=$ENTRY.$$.$(hostname).tmp
cat > "$tmp" <<'PYEOF'
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
mv -f "$tmp" "$ENTRY"
exec "${CMD[@]}"
