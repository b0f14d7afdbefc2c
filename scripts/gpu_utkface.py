"""Run the UTKFace-DIR reproduction grid on one GPU machine, many runs at a time, to a deadline.

Each (seed, method) is one ``python -m dirlib.sweep`` process (the same command as on the CPU);
``--jobs`` of them share the GPU. Jobs are taken seed by seed, so whole seeds finish first. No
job starts after ``--launch-until`` seconds, nor one that the durations of finished runs (same
method, else any) say would pass ``--stop-at``; at ``--stop-at`` seconds the unfinished ones are
killed (their records stay ``running`` and are not used). Every ``--pack-every`` seconds, and at
the end, the records under ``--out`` are packed into ``ARCHIVE`` (a .tar.gz), so a call that is
cut off still returns what finished.

    python scripts/gpu_utkface.py --data-dir .gpudata --out /tmp/runs --archive $OUT/runs.tar.gz
"""
import argparse
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from dirlib.figures import REPRODUCTION_METHODS

# the reproduction's methods, the costly ones first, so a seed's stragglers are cheap runs
COSTLY_FIRST = ("conr", "ranksim+frobenius", "lds+frobenius", "frobenius", "lds+fds", "fds", "rrt")
METHODS = sorted(REPRODUCTION_METHODS, key=lambda m: COSTLY_FIRST.index(m) if m in COSTLY_FIRST
                 else len(COSTLY_FIRST))
TRAIN_ARGS = ["img_size=64", "epochs=20", "lr_milestones=[14,18]"]


def pack(out: Path, archive: Path):
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for rec in sorted(out.rglob("run.json")):
            tar.add(rec, arcname=str(rec.relative_to(out)))
        for log in sorted(out.glob("*.log")):
            tar.add(log, arcname=f"logs/{log.name}")
    os.replace(tmp, archive)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--archive", required=True)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="torch/OpenMP threads per job")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--launch-until", type=float, default=420)
    ap.add_argument("--stop-at", type=float, default=500)
    ap.add_argument("--pack-every", type=float, default=30)
    ap.add_argument("--train-arg", nargs="*", default=[], help="extra/overriding KEY=VALUE")
    a = ap.parse_args()
    out, archive = Path(a.out), Path(a.archive)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads),
               DIRLIB_DATA=a.data_dir, PYTHONUNBUFFERED="1")
    todo = [(s, m) for s in a.seeds for m in a.methods]
    running, t0, last_pack = {}, time.time(), 0.0
    durations, skipped = {}, []   # method -> seconds of its finished runs
    while todo or running:
        now = time.time() - t0
        for key, (proc, fh, started) in list(running.items()):
            if proc.poll() is not None:
                fh.close()
                print(f"[{now:6.0f}s] done  seed={key[0]} {key[1]} rc={proc.returncode} "
                      f"({now - started:.0f}s)", flush=True)
                if proc.returncode == 0:
                    durations.setdefault(key[1], []).append(now - started)
                del running[key]
        if now > a.stop_at:
            for key, (proc, fh, _) in running.items():
                proc.kill()
                print(f"[{now:6.0f}s] killed seed={key[0]} {key[1]} at the deadline", flush=True)
            break
        while todo and len(running) < a.jobs and now < a.launch_until:
            seed, m = todo[0]
            took = durations.get(m) or [d for ds in durations.values() for d in ds]
            if took and now + 1.1 * max(took) > a.stop_at:   # it would be killed at the deadline
                print(f"[{now:6.0f}s] skip  seed={seed} {m}: {max(took):.0f}s would pass the deadline",
                      flush=True)
                skipped.append(todo.pop(0))
                continue
            todo.pop(0)
            fh = open(out / f"{m.replace('+', '_')}_seed{seed}.log", "w")
            cmd = [sys.executable, "-m", "dirlib.sweep", "--dataset", "utkface-dir", "--methods", m,
                   "--seeds", str(seed), "--out", str(out), "--delete-ckpt",
                   "--train-arg", *TRAIN_ARGS, *a.train_arg]
            running[(seed, m)] = (subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env),
                                  fh, now)
            print(f"[{now:6.0f}s] start seed={seed} {m}", flush=True)
        if not running and (not todo or now >= a.launch_until):
            break
        if now - last_pack > a.pack_every:
            pack(out, archive)
            last_pack = now
        time.sleep(1)
    if todo or skipped:
        print(f"not started (deadline): {skipped + todo}", flush=True)
    pack(out, archive)
    print(f"packed {len(list(out.rglob('run.json')))} records into {archive} after "
          f"{time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
