"""kill -9 at any moment, then `posgen train --resume`: nothing lost beyond one snapshot, nothing silent
(issue 17).

    OMP_NUM_THREADS=1 python benchmarks/kill_resume.py                   # 20 trials, about 6-8 minutes
    OMP_NUM_THREADS=1 python benchmarks/kill_resume.py --trials 40 --seed 3 --keep /tmp/kr

Trains a tiny digits-baseline (16x16 digits, 16 channels, batch 4, a checkpoint every 15 steps, the
early checkpoint after 1 s) once without interruption to --kimg, with the real command in a fresh
process. Then, per trial, starts the same training into a new run directory and kills it with SIGKILL,
either after a random delay or, for about a third of the kills, the moment a checkpoint's temporary file
(`.checkpoint.safetensors.*.tmp`) appears, i.e. inside a checkpoint write; resumes with `posgen train
--resume RUN`, killing some resumes again (up to --max-kills per trial), until a process finishes (a
trial whose first process finishes before its kill starts over with shorter delays). It checks, per kill:

- the run resumes: `--resume` exits 0 or is killed by us; the only refusal allowed is the documented
  one for a run killed before its first checkpoint ("has no checkpoint yet"), which is then started
  again with the same options and --out;
- the checkpoint left behind verifies (`posgen.checkpoint.verify`, what `posgen info --verify` runs);
- kimg lost <= one snapshot interval: the last step the killed process logged in stats.jsonl (one
  line per step) minus the step of the checkpoint the resume starts from;

and per trial: no temporary file is left in the run directory, every step is logged once in
stats.jsonl with the losses of the uninterrupted run, and the final checkpoint's tensors are
bit-identical to the uninterrupted run's (equal `tensor_digest`). Prints one row per trial and a
summary line; exits 1 when any check failed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["model.resolution=16", "discriminator.resolution=16", "model.z_dim=16", "model.w_dim=16",
        "model.mapping_layers=2", "model.channel_base=128", "model.channel_max=16",
        "discriminator.channel_base=128", "discriminator.channel_max=16", "data.digits.canvas=[16,16]",
        "data.digits.region=[0,0,8,8]", "train.batch_size=4", "train.r1_interval=2", "train.sample_seeds=4",
        "train.log_kimg=0.004", "train.threads=1"]
BATCH = 4
CHECKPOINT_TEMP = ".checkpoint.safetensors.*.tmp"
NO_CHECKPOINT_YET = "has no checkpoint yet"


def train_argv(out: Path, kimg: float, snapshot_kimg: float, first_snapshot_seconds: float) -> list[str]:
    sets = [*TINY, f"train.snapshot_kimg={snapshot_kimg}", f"train.first_snapshot_seconds={first_snapshot_seconds}"]
    return [sys.executable, "-m", "posgen", "train", "--preset", "digits-baseline", "--kimg", str(kimg),
            "--out", str(out), *[a for s in sets for a in ("--set", s)]]


def resume_argv(out: Path) -> list[str]:
    return [sys.executable, "-m", "posgen", "train", "--resume", str(out)]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "ab") as f:
        return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env)


def kill_when(proc: subprocess.Popen, run: Path, delay: float, in_write: bool) -> bool:
    """SIGKILL `proc` after `delay` s or, with in_write, at the first checkpoint temp file seen after it.
    -> whether it was killed (False: it finished first)."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    while in_write:
        if proc.poll() is not None:
            return False
        if run.is_dir() and next(run.glob(CHECKPOINT_TEMP), None) is not None:
            break
        time.sleep(0.0002)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def logged_steps(run: Path) -> list[dict]:
    """stats.jsonl's whole lines (a kill may cut the last one)."""
    lines = []
    path = run / "stats.jsonl"
    for line in (path.read_text().splitlines() if path.exists() else []):
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return lines


# The checkpoints are read without parsing their config: the trainings run the code on disk, which may
# be newer than what this process imported (a config field added meanwhile).
def checkpoint_step(run: Path) -> int | None:
    """The step of the run's checkpoint after verifying it (None: no checkpoint yet)."""
    from safetensors import safe_open

    from posgen import checkpoint

    path = run / checkpoint.CHECKPOINT_NAME
    if not path.exists():
        return None
    checkpoint.verify(path)  # a CheckpointError here is a failed check
    with safe_open(str(path), framework="pt") as f:
        return int(json.loads(f.metadata()["state"])["step"])


def final_digest(run: Path) -> str:
    from safetensors.torch import load_file

    from posgen import checkpoint

    return checkpoint.tensor_digest(load_file(str(run / checkpoint.CHECKPOINT_NAME)))


def without_timing(lines: list[dict]) -> list[dict]:
    return [{k: v for k, v in line.items() if k not in ("seconds", "images_per_s")} for line in lines]


def trial(index: int, root: Path, rng: random.Random, args, ref_wall: float, reference: dict) -> dict:
    run = root / f"trial-{index:02d}"
    log = root / f"trial-{index:02d}.log"
    snapshot_steps = round(args.snapshot_kimg * 1000 / BATCH)
    row = {"trial": index, "redone": 0, "kills": 0, "in_write": 0, "fresh_restarts": 0, "resumes": 0,
           "max_lost_steps": 0, "problems": []}
    argv = train_argv(run, args.kimg, args.snapshot_kimg, args.first_snapshot_seconds)
    kills_left = rng.randint(1, args.max_kills)
    span = ref_wall  # kill delays are drawn from [0, span)
    while True:
        proc, started = start(argv, log), time.monotonic()
        if kills_left > 0:
            in_write = rng.random() < args.in_write_fraction
            delay = rng.uniform(0, span * (0.8 if in_write else 1.0))
            killed = kill_when(proc, run, delay, in_write)
        else:
            killed = False
        if not killed:
            rc = proc.wait()
            tail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
            if rc == 0 and row["kills"] == 0:  # it finished before its kill: the trial starts over, delays shorter
                span = 0.9 * (time.monotonic() - started)
                shutil.rmtree(run, ignore_errors=True)
                row["redone"] += 1
                continue
            if rc == 0:
                break
            if rc == 2 and tail and NO_CHECKPOINT_YET in tail[0] and checkpoint_step(run) is None:
                row["fresh_restarts"] += 1  # the documented answer: start again with the same --out
                argv = train_argv(run, args.kimg, args.snapshot_kimg, args.first_snapshot_seconds)
                continue  # (the refused resume was not killed: the kill still due goes to the fresh start)
            row["problems"].append(f"exit {rc}: {tail[0] if tail else ''}")
            break
        kills_left -= 1
        row["kills"] += 1
        if not run.is_dir():  # killed before it made the run directory: there is no run to resume
            row["fresh_restarts"] += 1
            continue
        if next(run.glob(CHECKPOINT_TEMP), None) is not None:
            row["in_write"] += 1  # the kill left a half-written checkpoint behind
        logged = max((x["step"] for x in logged_steps(run)), default=0)
        try:
            resumed_from = checkpoint_step(run)
        except Exception as e:  # noqa: BLE001 - any error is a failed check, reported in the table
            row["problems"].append(f"checkpoint after kill: {e}")
            break
        lost = logged - (resumed_from or 0)
        row["max_lost_steps"] = max(row["max_lost_steps"], lost)
        if lost > snapshot_steps:
            row["problems"].append(f"lost {lost} steps > {snapshot_steps}")
        argv = resume_argv(run)
        row["resumes"] += 1
    leftovers = sorted(p.name for p in run.glob(".*.tmp")) if run.is_dir() else []
    if leftovers:
        row["problems"].append(f"temp files left: {leftovers}")
    if not row["problems"]:
        steps = without_timing(logged_steps(run))
        if steps != reference["stats"]:
            row["problems"].append("stats.jsonl differs from the uninterrupted run's")
        row["identical"] = final_digest(run) == reference["digest"]
        if not row["identical"]:
            row["problems"].append("final weights differ")
    else:
        row["identical"] = False
    if not args.keep:
        shutil.rmtree(run, ignore_errors=True)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--kimg", type=float, default=0.6, help="training length (default 0.6: 150 steps of 4)")
    p.add_argument("--snapshot-kimg", type=float, default=0.06, help="checkpoint interval (default 0.06: 15 steps)")
    p.add_argument("--first-snapshot-seconds", type=float, default=1.0)
    p.add_argument("--max-kills", type=int, default=3, help="kills per trial: 1 to this many (default 3)")
    p.add_argument("--in-write-fraction", type=float, default=1 / 3,
                   help="share of kills aimed at a checkpoint write (default 1/3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", help="keep the runs and logs in this folder (default: a temporary one, removed)")
    args = p.parse_args()

    started = time.monotonic()
    rng = random.Random(args.seed)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="posgen-kill-resume-"))
    root.mkdir(parents=True, exist_ok=True)
    ref_run = root / "uninterrupted"
    shutil.rmtree(ref_run, ignore_errors=True)
    t0 = time.monotonic()
    rc = start(train_argv(ref_run, args.kimg, args.snapshot_kimg, args.first_snapshot_seconds),
               root / "uninterrupted.log").wait()
    ref_wall = time.monotonic() - t0
    if rc != 0:
        print(f"the uninterrupted run failed (exit {rc}); see {root / 'uninterrupted.log'}", file=sys.stderr)
        return 1
    reference = {"digest": final_digest(ref_run), "stats": without_timing(logged_steps(ref_run))}
    snapshot_steps = round(args.snapshot_kimg * 1000 / BATCH)
    print(f"uninterrupted: {len(reference['stats'])} steps ({args.kimg:g} kimg) in {ref_wall:.1f} s wall, "
          f"checkpoint every {snapshot_steps} steps ({args.snapshot_kimg:g} kimg), digest {reference['digest'][:16]}")
    print(f"{'trial':>5} {'kills':>5} {'in write':>8} {'fresh':>5} {'resumes':>7} {'max lost':>8} {'identical':>9}  problems")
    rows = []
    for i in range(args.trials):
        row = trial(i, root, rng, args, ref_wall, reference)
        rows.append(row)
        print(f"{i:>5} {row['kills']:>5} {row['in_write']:>8} {row['fresh_restarts']:>5} {row['resumes']:>7} "
              f"{row['max_lost_steps']:>8} {'yes' if row['identical'] else 'NO':>9}  {'; '.join(row['problems'])}",
              flush=True)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    kills = sum(r["kills"] for r in rows)
    in_write = sum(r["in_write"] for r in rows)
    max_lost = max((r["max_lost_steps"] for r in rows), default=0)
    failed = [r["trial"] for r in rows if r["problems"]]
    print(f"summary: {len(rows)} trials, {kills} kills ({in_write} inside a checkpoint write, "
          f"{sum(r['fresh_restarts'] for r in rows)} before the first checkpoint), "
          f"{sum(r['resumes'] for r in rows)} resumes, all resumed: {'yes' if not failed else 'NO'}, "
          f"max lost {max_lost} steps = {max_lost * BATCH / 1000:g} kimg (bound {snapshot_steps} = "
          f"{args.snapshot_kimg:g} kimg), temp files left: {sum(1 for r in rows if any('temp' in x for x in r['problems']))}, "
          f"final weights identical: {sum(r['identical'] for r in rows)}/{len(rows)}, "
          f"wall {time.monotonic() - started:.0f} s ({sum(r['redone'] for r in rows)} trials redone: "
          f"the training finished before its first kill)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
