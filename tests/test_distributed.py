"""Multi-process training (posgen.training.distributed): 2 CPU processes with gloo under torchrun
against one process, and resumes across world sizes. The GAN runs are tiny digits-mspe ones
(16x16, 16 channels) at a global batch of 8: 4 per rank, D's minibatch-std groups of 4 intact;
the noise inputs are off because each rank draws its own (the one difference by design)."""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import tiny_run

from posgen import checkpoint
from posgen.cli import main
from posgen.models.discriminator import minibatch_stddev
from posgen.errors import ConfigError
from posgen.training.distributed import Ranks
from posgen.training.loop import train

# a global batch of 8, 4 steps, R1 at steps 0 and 2, snapshots at 2 and 4
GAN = ("model.noise=false", "train.batch_size=8", "train.kimg=0.032", "train.snapshot_kimg=0.016",
       "discriminator.pack=1")  # packing trains in one process only
# 2 processes against 1: the same numbers summed in another order (each rank's mean over its half,
# then the all-reduce) and Adam's division by sqrt(v); measured max |difference| of any weight after
# 4 steps: 3.0e-7 (GAN, R1 twice), 3.7e-9 (DDPM)
ATOL = 1e-5


def overrides(cfg) -> list[str]:
    """--set KEY=VALUE arguments that rebuild run config `cfg` from its preset."""
    out = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        else:
            out.append(f"{prefix}={json.dumps(value)}")

    d = cfg.to_dict()
    for section in ("model", "discriminator", "train", "data"):
        if d[section] is not None:
            walk(section, d[section])
    return out


def forked(nproc: int, fn) -> None:
    """fn() in `nproc` forked processes that form a gloo process group as torchrun's would (the
    environment variables it sets, a free port); forked, they start without importing anything."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_rank, args=(rank, nproc, port, fn)) for rank in range(nproc)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0] * nproc


def _rank(rank: int, nproc: int, port: int, fn) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(nproc))
    # one OpenMP thread per rank, as torchrun's OMP_NUM_THREADS=1: a forked child that reuses the parent's
    # OpenMP pool can hang in its first parallel region (GNU libgomp is not fork-safe)
    torch.set_num_threads(1)
    try:
        fn()
    except BaseException:
        import traceback

        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def torchrun(nproc: int, *args: str) -> None:
    """`torchrun --standalone --nproc_per_node=nproc ARGS` (a free port of its own); ARGS: a script or
    `-m module` and its arguments."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def weights(run) -> dict[str, torch.Tensor]:
    tensors, _, _ = checkpoint.load(run)
    return {k: v for k, v in tensors.items() if k.split(".")[0] in ("G", "G_ema", "D")}


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two-process runs: `full` (4 steps, through torchrun and the CLI), `half` (2 steps) and
    `resumed` (half continued to 4)."""
    root = tmp_path_factory.mktemp("dist")
    cfg = tiny_run("digits-mspe", *GAN)
    train(cfg, root / "single", seed=3, progress=False)  # first: the forked ranks inherit what it imported
    forked(2, partial(train, tiny_run("digits-mspe", *GAN, "train.kimg=0.016"), root / "half", seed=3, progress=False))
    shutil.copytree(root / "half", root / "half-copy")
    forked(2, partial(train, None, root / "half", resume=True, kimg=0.032, progress=False))
    torchrun(2, "-m", "posgen", "train", "--preset", "digits-mspe", "--seed", "3",
             *[a for o in overrides(cfg) for a in ("--set", o)], "--out", str(root / "full"))
    return {"cfg": cfg, "full": root / "full", "resumed": root / "half", "half": root / "half-copy", "root": root}


def test_two_processes_match_one(runs):
    diff = max_difference(weights(runs["full"]), weights(runs["root"] / "single"))
    assert diff < ATOL, diff


def test_two_process_resume_equals_uninterrupted(runs):
    assert max_difference(weights(runs["resumed"]), weights(runs["full"])) == 0.0


def test_resume_with_one_process_continues_the_two_process_run(runs, tmp_path):
    run = tmp_path / "one"
    shutil.copytree(runs["half"], run)
    train(None, run, resume=True, kimg=0.032, progress=False)
    _, _, state = checkpoint.load(run)
    assert state["step"] == 4 and state["world_size"] == 1
    assert max_difference(weights(run), weights(runs["full"])) < ATOL


def test_rank0_writes_once_and_info_shows_the_ranks(runs, capsys):
    full = runs["full"]
    assert sorted(p.name for p in full.glob("samples-*.png")) == ["samples-0000002.png", "samples-0000004.png"]
    lines = [json.loads(x) for x in (full / "stats.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == sorted({x["step"] for x in lines})  # one writer: no line twice
    assert main(["info", str(full)]) == 0
    progress = json.loads(capsys.readouterr().out)["progress"]
    assert progress["world_size"] == 2 and progress["batch_per_rank"] == 4 and progress["step"] == 4


def test_ranks_leave_no_threads_of_the_process_group(tmp_path):
    """After train() every rank's gloo threads are gone: a group kept alive past destroy_process_group
    (torch._dynamo's modules, imported by Adam after the group exists, bind it as a default argument)
    leaves them running into the interpreter's exit, where a rank can abort after a complete run."""
    script = tmp_path / "rank.py"
    script.write_text(f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from conftest import tiny_run
from posgen.training.loop import train
train(tiny_run("digits-mspe", *{GAN!r}, "train.kimg=0.008"), {str(tmp_path / "run")!r}, progress=False)
threads = [open(f"/proc/self/task/{{t}}/comm").read().strip() for t in os.listdir("/proc/self/task")]
sys.exit(f"threads left: {{threads}}" if any("gloo" in t for t in threads) else 0)
""")
    torchrun(2, str(script))


def test_shards_keep_the_minibatch_std_groups():
    x = torch.randn(8, 6, 3, 3)
    full = minibatch_stddev(x, 4, 2)
    for rank in range(2):
        r = Ranks(rank, 2)
        assert torch.equal(minibatch_stddev(r.shard(x, 4), 4, 2), r.shard(full, 4))
    union = torch.cat([Ranks(rank, 2).shard(torch.arange(8), 4) for rank in range(2)])
    assert sorted(union.tolist()) == list(range(8))  # every sample on exactly one rank


@pytest.mark.parametrize("interleave", [1, 4])
def test_gather_is_the_inverse_of_shard(monkeypatch, interleave):
    """Each rank's `gather` of its shard rebuilds the global batch in its order (the nearest-sample pull
    lets every real choose among the whole batch's candidates this way)."""
    import posgen.training.distributed as distributed

    full = torch.arange(8 * 3).view(8, 3)

    def all_gather(parts, x):  # what gloo would deliver: rank q's shard in parts[q]
        for q in range(2):
            parts[q].copy_(Ranks(q, 2).shard(full, interleave))

    monkeypatch.setattr(distributed.dist, "all_gather", all_gather)
    for rank in range(2):
        r = Ranks(rank, 2)
        assert torch.equal(r.gather(r.shard(full, interleave), interleave), full)


def test_batch_that_does_not_split_is_refused():
    with pytest.raises(ConfigError, match="train.batch_size 8 does not split over 3 processes"):
        Ranks(0, 3).local_batch(8)
    assert Ranks(2, 4).local_batch(8) == 2


def test_ddpm_two_processes_match_one(tmp_path):
    cfg = tiny_run("digits-ddpm-mspe")  # global batch 4: 2 per rank, 4 steps
    train(cfg, tmp_path / "one", seed=5, progress=False)
    forked(2, partial(train, tiny_run("digits-ddpm-mspe"), tmp_path / "two", seed=5, progress=False))
    diff = max_difference(weights(tmp_path / "two"), weights(tmp_path / "one"))
    assert diff < ATOL, diff
    _, _, state = checkpoint.load(tmp_path / "two")
    assert (state["world_size"], state["batch_per_rank"]) == (2, 2)
