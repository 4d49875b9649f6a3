"The multi-GPU launchers (scripts/launch_pretrain.sh, scripts/launch_finetune.sh) with DRY_RUN=1: the printed command and the input checks."
import os, shlex, subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN, FINETUNE = ROOT/"scripts"/"launch_pretrain.sh", ROOT/"scripts"/"launch_finetune.sh"
ENV_KEYS = ("PRESET", "NGPUS", "LAUNCHER", "DS_CONFIG", "HOSTFILE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
            "DRY_RUN", "STAGE", "PYTHON", "PHI1_CONFIGS")


def launch(*args, script=PRETRAIN, **env):
    "Run a launcher with DRY_RUN=1 and a clean launch environment; returns the CompletedProcess."
    e = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    e.update(DRY_RUN="1", **{k: str(v) for k, v in env.items()})
    return subprocess.run(["bash", str(script), *args], env=e, capture_output=True, text=True, timeout=60)


def command(*args, **env) -> list[str]:
    "The one-line command a dry run prints, split as the shell would."
    r = launch(*args, **env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout
    return shlex.split(lines[0])


def has(cmd:list[str], *seq) -> bool:
    "`seq` appears in `cmd` as consecutive arguments."
    seq = list(seq)
    return any(cmd[i:i+len(seq)] == seq for i in range(len(cmd) - len(seq) + 1))


def entry_args(cmd:list[str]) -> list[str]:
    "The arguments after the entry script: stage, preset, run dir, overrides."
    i = next(i for i, a in enumerate(cmd) if a.endswith(".launch_entry.py"))
    return cmd[i+1:]


def fails(*args, match:str, **env):
    r = launch(*args, **env)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "", r.stdout
    assert match in r.stderr, r.stderr
    return r.stderr


@pytest.fixture
def hostfile(tmp_path):
    p = tmp_path/"hostfile"
    p.write_text("# two 8-GPU nodes\nhostA slots=8\n\n   \nhostB slots=8  # the second\n")
    return p


def test_scripts_parse():
    for s in (PRETRAIN, FINETUNE):
        assert subprocess.run(["bash", "-n", str(s)]).returncode == 0
        assert "set -euo pipefail" in s.read_text()


def test_single_node_deepspeed():
    cmd = command("runs/paper", LAUNCHER="deepspeed", NGPUS=8)
    assert has(cmd, "-m", "deepspeed.launcher.runner") and has(cmd, "--num_gpus", "8") and "--no_local_rank" in cmd
    assert "--hostfile" not in cmd and "--num_nodes" not in cmd
    assert cmd[cmd.index("--no_local_rank") + 1] == "runs/paper/.launch_entry.py"
    assert entry_args(cmd) == ["pretrain", "paper", "runs/paper"]


def test_single_node_torchrun_defaults():
    cmd = command(LAUNCHER="torchrun")   # NGPUS 8, PRESET paper, RUN_DIR runs/paper by default
    assert has(cmd, "-m", "torch.distributed.run") and has(cmd, "--standalone", "--nproc_per_node", "8")
    assert "--nnodes" not in cmd
    assert entry_args(cmd) == ["pretrain", "paper", "runs/paper"]


def test_single_node_accelerate():
    cmd = command("r", LAUNCHER="accelerate", NGPUS=4)
    assert has(cmd, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "4") and "--num_machines" not in cmd


def test_dry_run_writes_nothing(tmp_path):
    command(str(tmp_path/"run"), LAUNCHER="torchrun")
    assert not (tmp_path/"run").exists()


def test_two_nodes_deepspeed_hostfile(hostfile):
    cmd = command("runs/paper", LAUNCHER="deepspeed", HOSTFILE=hostfile)
    assert has(cmd, "--hostfile", str(hostfile)) and has(cmd, "--num_nodes", "2") and has(cmd, "--num_gpus", "8")
    assert has(cmd, "--master_addr", "hostA") and has(cmd, "--master_port", "29500")
    assert entry_args(cmd) == ["pretrain", "paper", "runs/paper"]


def test_deepspeed_hostfile_env_overrides(hostfile):
    cmd = command(LAUNCHER="deepspeed", HOSTFILE=hostfile, NNODES=1, NGPUS=4, MASTER_ADDR="10.0.0.1", MASTER_PORT=29611)
    assert has(cmd, "--num_nodes", "1") and has(cmd, "--num_gpus", "4")
    assert has(cmd, "--master_addr", "10.0.0.1") and has(cmd, "--master_port", "29611")


def test_ngpus_defaults_to_fewest_slots(tmp_path):
    hf = tmp_path/"hf"; hf.write_text("a slots=8\nb slots=4\n")
    assert has(command(LAUNCHER="deepspeed", HOSTFILE=hf), "--num_gpus", "4")


def test_torchrun_multi_node_from_hostfile(hostfile):
    cmd = command("runs/paper", LAUNCHER="torchrun", HOSTFILE=hostfile, NODE_RANK=1)
    assert has(cmd, "--nnodes", "2", "--node_rank", "1", "--master_addr", "hostA", "--master_port", "29500", "--nproc_per_node", "8")
    assert "--standalone" not in cmd and "--hostfile" not in cmd


def test_torchrun_multi_node_from_env():
    cmd = command(LAUNCHER="torchrun", NNODES=2, NODE_RANK=0, MASTER_ADDR="hostA", MASTER_PORT=29700, NGPUS=8)
    assert has(cmd, "--nnodes", "2", "--node_rank", "0", "--master_addr", "hostA", "--master_port", "29700", "--nproc_per_node", "8")


def test_accelerate_multi_node(hostfile):
    cmd = command(LAUNCHER="accelerate", HOSTFILE=hostfile, NODE_RANK=1)
    assert has(cmd, "--num_processes", "16")    # accelerate counts the processes of all machines
    assert has(cmd, "--num_machines", "2", "--machine_rank", "1", "--main_process_ip", "hostA", "--main_process_port", "29500")


def test_finetune_sets_stage():
    cmd = command("runs/paper", "--finetune.max_steps", "10", script=FINETUNE, LAUNCHER="torchrun")
    assert entry_args(cmd) == ["finetune", "paper", "runs/paper", "--finetune.max_steps", "10"]


def test_overrides_pass_through():
    cmd = command("runs/x", "--pretrain.max_steps", "24000", "--run.seed=7", "--pretrain.precision", "bf16",
                  LAUNCHER="deepspeed", PRESET="tiny", NGPUS=1)
    assert entry_args(cmd) == ["pretrain", "tiny", "runs/x", "--pretrain.max_steps", "24000", "--run.seed=7",
                               "--pretrain.precision", "bf16"]


def test_resume_false_is_the_one_spelling_of_a_fresh_start():
    "--resume false (as on `phi1 pretrain`) is the stage's resume=false, wherever it appears; --force is refused by name."
    cmd = command("runs/x", "--pretrain.max_steps", "3", "--resume", "false", LAUNCHER="torchrun", PRESET="tiny", NGPUS=1)
    assert entry_args(cmd) == ["pretrain", "tiny", "runs/x", "--pretrain.max_steps", "3", "--pretrain.resume", "false"]
    cmd = command("--resume=false", script=FINETUNE, LAUNCHER="torchrun", PRESET="tiny", NGPUS=1)
    assert entry_args(cmd) == ["finetune", "tiny", "runs/tiny", "--finetune.resume", "false"]
    fails("runs/x", "--force", LAUNCHER="torchrun", PRESET="tiny", match="a fresh start is --resume false")


def test_preconditions_are_checked_before_any_process_starts(tmp_path):
    "The batch split, typed overrides and the DeepSpeed JSON: one line and exit 2 before anything starts or is written."
    e = dict(LAUNCHER="torchrun", PRESET="tiny")
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}   # a real launch, not a dry run
    r = subprocess.run(["bash", str(PRETRAIN), str(tmp_path/"r")], env={**env, **e, "NGPUS": "2"}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "launch_pretrain: error: pretrain.effective_batch=16 is not a multiple of micro_batch_size x GPUs x nodes = 16 x 2 x 1"]
    fails(str(tmp_path/"r"), "--pretrain.learning_rate", "fast", NGPUS=1, match="--pretrain.learning_rate 'fast': expected a float", **e)
    fails(str(tmp_path/"r"), "--finetune.deepspeed", "nowhere.json", NGPUS=1, script=FINETUNE, match="finetune.deepspeed=nowhere.json: no such file", **e)
    assert not (tmp_path/"r").exists()                                # no entry written, no process started
    cmd = command("runs/x", "--pretrain.effective_batch", "32", NGPUS=2, LAUNCHER="torchrun", PRESET="tiny")
    assert has(cmd, "--nproc_per_node", "2")


def test_overrides_without_run_dir():
    cmd = command("--pretrain.max_steps", "3", LAUNCHER="torchrun", PRESET="tiny", NGPUS=1)
    assert entry_args(cmd) == ["pretrain", "tiny", "runs/tiny", "--pretrain.max_steps", "3"]


def test_ds_config_passthrough():
    cmd = command("runs/paper", "--pretrain.max_steps", "5", LAUNCHER="deepspeed", DS_CONFIG=ROOT/"configs"/"ds_zero3.json")
    assert entry_args(cmd) == ["pretrain", "paper", "runs/paper", "--pretrain.deepspeed", str(ROOT/"configs"/"ds_zero3.json"),
                               "--pretrain.max_steps", "5"]
    cmd = command(script=FINETUNE, LAUNCHER="torchrun", DS_CONFIG="configs/ds_zero3.json")   # relative to the repository
    a = entry_args(cmd)
    assert a[3] == "--finetune.deepspeed" and a[4].endswith("configs/ds_zero3.json") and Path(a[4]).exists()


def test_no_ds_config_keeps_preset():
    assert not any("deepspeed" in a for a in entry_args(command(LAUNCHER="deepspeed")))


def test_error_missing_hostfile(tmp_path):
    fails(LAUNCHER="deepspeed", HOSTFILE=tmp_path/"nope", match=f"HOSTFILE={tmp_path/'nope'}: not found")


def test_error_malformed_hostfile_line(tmp_path):
    hf = tmp_path/"hf"; hf.write_text("hostA slots=8\nhostB 8\n")
    err = fails(LAUNCHER="deepspeed", HOSTFILE=hf, match="line 2: expected 'hostname slots=N'")
    assert "hostB 8" in err


def test_error_duplicate_host_and_empty_hostfile(tmp_path):
    hf = tmp_path/"hf"; hf.write_text("hostA slots=8\nhostA slots=8\n")
    fails(LAUNCHER="deepspeed", HOSTFILE=hf, match="host hostA listed twice")
    hf.write_text("# nothing\n\n")
    fails(LAUNCHER="deepspeed", HOSTFILE=hf, match="lists no hosts")


def test_error_node_rank_missing(hostfile):
    fails(LAUNCHER="torchrun", HOSTFILE=hostfile, match="NODE_RANK is required")
    fails(LAUNCHER="accelerate", NNODES=2, MASTER_ADDR="hostA", match="NODE_RANK is required")
    fails(LAUNCHER="torchrun", HOSTFILE=hostfile, NODE_RANK=2, match="NODE_RANK=2: must be 0..1")


def test_error_master_addr_missing_without_hostfile():
    fails(LAUNCHER="torchrun", NNODES=2, NODE_RANK=0, match="MASTER_ADDR")


def test_error_ngpus_above_slots(tmp_path):
    hf = tmp_path/"hf"; hf.write_text("hostA slots=8\nhostB slots=4\n")
    fails(LAUNCHER="deepspeed", HOSTFILE=hf, NGPUS=8, match="NGPUS=8 but host hostB has slots=4")


def test_error_nnodes_above_hosts(hostfile):
    fails(LAUNCHER="deepspeed", HOSTFILE=hostfile, NNODES=3, match="lists only 2 hosts")


def test_error_deepspeed_multi_node_needs_hostfile():
    fails(LAUNCHER="deepspeed", NNODES=2, match="needs HOSTFILE")


def test_error_unknown_launcher():
    fails(LAUNCHER="mpirun", match="unknown LAUNCHER=mpirun")


def test_error_bad_numbers_and_inputs():
    fails(LAUNCHER="torchrun", NGPUS=0, match="NGPUS=0: must be a positive integer")
    fails(LAUNCHER="torchrun", NGPUS="eight", match="NGPUS=eight")
    fails(LAUNCHER="torchrun", DS_CONFIG="configs/nope.json", match="DS_CONFIG=configs/nope.json: not found")
    fails(LAUNCHER="torchrun", PRESET="nope", match="PRESET=nope")
    fails(LAUNCHER="torchrun", STAGE="eval", match="STAGE=eval")


def _gpu_check(*args):
    import json, sys
    r = subprocess.run([sys.executable, str(ROOT/"scripts/gpu_check.py"), *args], capture_output=True, text=True,
                       timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, (r.stdout[-2000:], r.stderr[-2000:])
    return r, json.loads(lines[0])


def test_gpu_check_without_cuda_fails_unless_cpu():
    "A torch that cannot see a GPU (this CPU machine, or a +cpu wheel on a GPU node) is an error, not a CPU run."
    import torch
    if torch.cuda.is_available(): pytest.skip("a GPU is visible")
    r, res = _gpu_check("--tiny")
    assert r.returncode == 2 and res["preflight"]["ok"] is False and "CUDA is not available" in res["preflight"]["error"]
    assert "tiny_run" not in res


def test_gpu_check_cpu_tiny():
    "scripts/gpu_check.py --cpu --tiny: every part runs and stdout is one JSON object."
    r, res = _gpu_check("--cpu", "--tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    assert res["device"].startswith("cpu") and res["tiny"] is True and res["failed"] == [] and not res["preflight"]["missing"]
    for part in ("tiny_run", "small_train", "memory", "resume", "generation", "zero2"):
        assert "error" not in res[part], (part, res[part])
    s = res["small_train"]["sdpa"]
    assert s["steps"] == 4 and s["tokens_per_s"] > 0 and 0 < s["mfu"] < 1
    assert res["tiny_run"]["steps"] == 4 and res["resume"]["resumed_from"] == "checkpoint-2" and res["resume"]["bit_identical"]
    assert all(v["step_s"] > 0 and v["predicted_gib"] > 0 for k, v in res["memory"].items() if k != "seconds")
    assert res["generation"]["samples"] == 4 and res["generation"]["tokens_per_s"] > 0
