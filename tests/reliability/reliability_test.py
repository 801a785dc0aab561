#!/usr/bin/env python3
"""Reliability tests of the rsa_gpu binary: nothing lost, nothing left behind.

Usage: reliability_test.py RSA_GPU_BINARY GROUP     (GROUP: options, outputs, interrupts, figures, diskfull)

  options     a table of commands with bad options or output paths: each must exit with the expected code
              (2: the user can fix it) and a message holding a phrase, before any work, leaving the folder as it was
  outputs     concurrent runs with the same --out (the second exits 2 naming the first's pid, the first completes),
              --force replacing only the folder that existed at the start, a folder or file created by someone else
              during a run (left alone, results kept aside), stale lock files, one-file outputs refused without --force
  interrupts  SIGINT / SIGTERM during training (train and the main job), the tiled rdm, the bootstrap and the
              permutation test, and a second signal: exit 130 / 143, one line naming the stage, a clean folder
  figures     SIGINT during the figures child (a stand-in make_figures.py, and the real one when python3-matplotlib
              and python3-sklearn exist): an interruption, not a figures failure; the child is gone; a child killed
              by someone else is a figures failure (results kept)
  diskfull    outputs on a full tmpfs (mounted in a private mount namespace with `unshare`; skipped, saying so,
              where the machine does not allow it): exit 1 naming the file and the cause, nothing left behind

Only the Python standard library is used (inputs are written as .npy by hand). Exit 0 pass, 1 fail, 77 skipped.
"""

import array
import glob
import os
import queue
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else ""
GROUP = sys.argv[2] if len(sys.argv) > 2 else "all"
HERE = os.path.dirname(os.path.abspath(__file__))
FAILURES = []
LEFTOVER_MARKS = (".partial-", ".tmp", ".lock", ".new-", ".old-", ".tiled-")


# ---------------------------------------------------------------- helpers
def fail(msg):
    FAILURES.append(msg)
    print("FAIL: " + msg, flush=True)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def save_npy(path, rows, cols, seed=1):
    """A float32 C-order (rows, cols) .npy; row i is a rotation of one random row (no constant rows)."""
    rnd = random.Random(seed)
    base = array.array("f", [rnd.random() for _ in range(cols)]).tobytes()
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, cols)
    header += " " * (64 - (10 + len(header) + 1) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
        for i in range(rows):
            k = (i * 37 % cols) * 4
            f.write(base[k:] + base[:k])


def listing(folder):
    return sorted(os.listdir(folder))


def leftovers(folder):
    return [n for n in listing(folder) if any(m in n for m in LEFTOVER_MARKS)]


def run(args, cwd, env=None, timeout=300):
    """Runs rsa_gpu with `args` (a shell-like string) in cwd; returns (rc, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    p = subprocess.run([BIN] + shlex.split(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def fresh(name):
    d = os.path.join(WORK, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


class Job:
    """rsa_gpu running in the background; its stdout lines are collected by a thread."""

    def __init__(self, args, cwd, env=None):
        self.args = args
        self.cwd = cwd
        self.p = subprocess.Popen([BIN] + shlex.split(args), cwd=cwd, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.out = []
        self.err = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.out.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, phrase, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                return False
            if phrase in line:
                return True
        return False

    def wait_for(self, predicate, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.p.poll() is not None:
                return False
            if predicate():
                return True
            time.sleep(0.02)
        return False

    def finish(self, timeout=120):
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            fail(f"'{self.args}' did not finish within {timeout} s")
        self.err = self.p.stderr.read()
        return self.p.returncode


def check_interrupted(job, sig, stage, sent_at, name):
    """Exit 128 + sig soon after the signal, one 'interrupted' line naming the signal and the stage."""
    rc = job.finish(timeout=60)
    took = time.monotonic() - sent_at
    signame = "SIGINT" if sig == signal.SIGINT else "SIGTERM"
    check(rc == 128 + sig, f"{name}: exit code {rc}, expected {128 + sig}; stderr: {job.err!r}")
    lines = [l for l in job.err.splitlines() if "interrupted" in l]
    check(len(lines) == 1, f"{name}: expected one 'interrupted' line on stderr, got {lines!r}")
    want = f"interrupted ({signame}) during {stage}; nothing written"
    check(want in job.err, f"{name}: stderr lacks {want!r}: {job.err!r}")
    check(took < 15, f"{name}: took {took:.1f} s to stop after the signal")


def check_clean(folder, expected, name):
    got = listing(folder)
    check(got == sorted(expected), f"{name}: folder holds {got}, expected {sorted(expected)} (left behind: "
                                   f"{sorted(set(got) - set(expected))})")


def make_v1(folder):
    rc, _, err, _ = run("synthetic --device cpu --neurons 300 --out v1.npz --quiet", folder)
    if rc != 0:
        fail(f"synthetic failed: {err}")


# ---------------------------------------------------------------- options
def group_options():
    d = fresh("options")
    make_v1(d)
    save_npy(os.path.join(d, "x.npy"), 20, 30)
    with open(os.path.join(d, "exists.npy"), "wb") as f:
        f.write(b"user data")
    with open(os.path.join(d, "exists.npz"), "wb") as f:
        f.write(b"user data")
    os.makedirs(os.path.join(d, "existing_dir"))
    with open(os.path.join(d, "existing_dir", "keep.txt"), "w") as f:
        f.write("keep")
    before = listing(d)
    main = "--device cpu --v1 v1.npz --no-figures --out res "
    train = "train --device cpu --save-model n.npz "
    cases = [
        # (command, exit code, phrase of the message)
        (main + "--seed -1", 2, "--seed"),
        (main + "--seed 18446744073709551616", 2, "out of range"),
        (main + "--v1-seed -1", 2, "--v1-seed"),
        (main + "--stats-seed -5", 2, "--stats-seed"),
        (main + "--seed 1.5", 2, "--seed"),
        (main + "--sf inf", 2, "not finite"),
        (main + "--sf nan", 2, "not finite"),
        (main + "--sf 0", 2, "--sf"),
        (main + "--sf -1", 2, "--sf"),
        (main + "--res 0", 2, "--res"),
        (main + "--res 1e9", 2, "--res"),
        (main + "--res nan", 2, "not finite"),
        (main + "--res -0.1", 2, "--res"),
        ("--device cpu --no-figures --out res --v1-neurons 0", 2, "--v1-neurons"),
        ("--device cpu --no-figures --out res --v1-neurons 1e12", 2, "--v1-neurons"),
        ("--device cpu --no-figures --out res --v1-neurons 99999999999999999999", 2, "--v1-neurons"),
        ("--device cpu --no-figures --out res --v1-trials 359", 2, "--v1-trials"),
        ("--device cpu --no-figures --out res --v1-trials -4598", 2, "--v1-trials"),
        (main + "--epochs 0", 2, "--epochs"),
        (main + "--epochs 1e3", 2, "--epochs"),
        (main + "--epochs 4294967297", 2, "--epochs"),
        (main + "--batch 0", 2, "--batch"),
        (main + "--train-size -1", 2, "--train-size"),
        (main + "--lr inf", 2, "not finite"),
        (main + "--lr nan", 2, "not finite"),
        (main + "--lr 0", 2, "--lr"),
        (main + "--momentum 1", 2, "--momentum"),
        (main + "--momentum nan", 2, "not finite"),
        (main + "--max-gpu-mem inf", 2, "--max-gpu-mem"),
        (main + "--max-gpu-mem nan", 2, "--max-gpu-mem"),
        (main + "--max-gpu-mem 1e30G", 2, "out of range"),
        (main + "--max-gpu-mem 20000000000G", 2, "out of range"),
        (main + "--max-gpu-mem -5M", 2, "--max-gpu-mem"),
        (main + "--max-gpu-mem 0.1", 2, "out of range"),
        (main + "--max-gpu-mem 12Q", 2, "12Q"),
        (main + "--measures ''", 2, "--measures: the list is empty"),
        (main + "--measures pearson,", 2, "empty item"),
        (main + "--measures nope", 2, "nope"),
        (main + "--layers ''", 2, "--layers: the list is empty"),
        (main + "--layers pool,,fc", 2, "empty item"),
        (main + "--bootstrap -2", 2, "--bootstrap"),
        (main + "--device nope", 2, "--device"),
        ("stimuli --device cpu --angles '' --out s.npy", 2, "--angles: the list is empty"),
        ("stimuli --device cpu --angles 1,,2 --out s.npy", 2, "empty item"),
        ("stimuli --device cpu --angles 1,2, --out s.npy", 2, "empty item"),
        ("stimuli --device cpu --angles 1,inf --out s.npy", 2, "'inf'"),
        ("stimuli --device cpu --angles 0 --res inf --out s.npy", 2, "not finite"),
        ("stimuli --device cpu --angles 0 --sf 0 --out s.npy", 2, "--sf"),
        ("stimuli --device cpu --out s.npy", 2, "--angles"),
        ("synthetic --device cpu --neurons 0 --out s.npz", 2, "--neurons"),
        ("synthetic --device cpu --trials 100 --out s.npz", 2, "--trials"),
        ("synthetic --device cpu --seed -1 --out s.npz", 2, "--seed"),
        (train + "--epochs 0", 2, "--epochs"),
        (train + "--lr inf", 2, "not finite"),
        # output paths: missing, not a folder, not writable, existing, names that cannot be outputs
        ("rdm --device cpu --responses x.npy --out nodir/r.npy", 2, "nodir"),
        ("rdm --device cpu --responses x.npy --out x.npy/r.npy", 2, "not a folder"),
        ("rdm --device cpu --responses x.npy --out /proc/rsa_gpu_r.npy", 2, "/proc"),
        ("rdm --device cpu --responses x.npy --out ''", 2, "empty"),
        ("rdm --device cpu --responses x.npy --out existing_dir", 2, "folder"),
        ("rdm --device cpu --responses x.npy --out exists.npy", 2, "already exists"),
        ("stimuli --device cpu --angles 0,45 --out exists.npy", 2, "already exists"),
        ("stimuli --device cpu --angles 0,45 --out nodir/s.npy", 2, "nodir"),
        ("synthetic --device cpu --neurons 20 --out exists.npz", 2, "already exists"),
        ("synthetic --device cpu --neurons 20 --out /proc/rsa_gpu_s.npz", 2, "/proc"),
        ("train --device cpu --epochs 100000 --save-model exists.npz", 2, "already exists"),
        ("train --device cpu --epochs 100000 --save-model nodir/n.npz", 2, "nodir"),
        ("--device cpu --v1 v1.npz --no-figures --epochs 100000 --save-model exists.npz --out res", 2,
         "already exists"),
        ("--device cpu --v1 v1.npz --no-figures --epochs 100000 --out existing_dir", 2, "already exists"),
        ("--device cpu --v1 v1.npz --no-figures --epochs 100000 --out x.npy --force", 2, "not a folder"),
        ("--device cpu --v1 v1.npz --no-figures --epochs 100000 --out /proc/rsa_gpu_res", 2, "/proc"),
        ("--device cpu --v1 v1.npz --no-figures --epochs 100000 --out nodir/res", 2, "nodir"),
        ("--device cpu --v1 v1.npz --no-figures --epochs 100000 --out . --force", 2, "cannot be an output"),
        ("--device cpu --v1 v1.npz --no-figures --epochs 100000 --out ''", 2, "empty"),
    ]
    for cmd, code, phrase in cases:
        rc, out, err, took = run(cmd, d)
        ok = check(rc == code, f"'{cmd}': exit code {rc}, expected {code}; stderr: {err.strip()!r}")
        ok &= check(phrase in err, f"'{cmd}': stderr lacks {phrase!r}: {err.strip()!r}")
        # Refused before any work (--epochs 100000 would train for minutes).
        ok &= check(took < 20, f"'{cmd}': took {took:.1f} s to fail; expected a refusal before any work")
        ok &= check(listing(d) == before, f"'{cmd}': left {sorted(set(listing(d)) - set(before))}")
        if ok:
            print(f"ok   {code}  {cmd}  ->  {err.strip().splitlines()[-1] if err.strip() else ''}")
        for n in set(listing(d)) - set(before):  # keep the next cases independent
            p = os.path.join(d, n)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    with open(os.path.join(d, "exists.npy"), "rb") as f:
        check(f.read() == b"user data", "exists.npy was modified")
    check(listing(os.path.join(d, "existing_dir")) == ["keep.txt"], "existing_dir was modified")


# ---------------------------------------------------------------- outputs
def group_outputs():
    d = fresh("outputs")
    make_v1(d)
    base = listing(d)
    long_job = "--device cpu --v1 v1.npz --no-figures --bootstrap 0 --epochs 25 "

    # 1. Two runs with the same --out: the second exits 2 at once naming the first's pid; the first completes.
    a = Job(long_job + "--out res", d)
    check(a.wait_for_line("CNN: training"), "race: the first run did not start training")
    rc, _, err, took = run(long_job + "--out res", d)
    check(rc == 2 and f"pid {a.p.pid}" in err, f"race: second run exit {rc}, stderr {err!r} (expected 2 naming "
                                               f"pid {a.p.pid})")
    check(took < 10, f"race: the second run took {took:.1f} s to fail")
    rc, _, err, _ = run(long_job + "--out res --force", d)
    check(rc == 2 and f"pid {a.p.pid}" in err, f"race: second run with --force exit {rc}, stderr {err!r}")
    rc, _, err, _ = run("train --device cpu --epochs 1 --save-model .res.lock", d)  # the lock is not an output
    check(rc == 2, f"race: writing over the lock file: exit {rc}, {err!r}")
    rc = a.finish()
    check(rc == 0, f"race: the first run failed ({rc}): {a.err}")
    check(os.path.exists(os.path.join(d, "res", "results.json")), "race: res/results.json missing")
    check_clean(d, base + ["res"], "race")
    print("ok   concurrent --out: the second run exits 2 naming the first, the first completes")

    # 2. --force replaces the folder that existed at the start.
    os.makedirs(os.path.join(d, "old"))
    open(os.path.join(d, "old", "old.txt"), "w").close()
    rc, _, err, _ = run("--device cpu --v1 v1.npz --no-figures --bootstrap 0 --epochs 2 --quiet --out old --force", d)
    check(rc == 0, f"--force: exit {rc}: {err}")
    check(sorted(os.listdir(os.path.join(d, "old"))).count("results.json") == 1 and
          not os.path.exists(os.path.join(d, "old", "old.txt")), "--force: 'old' was not replaced")
    check_clean(d, base + ["res", "old"], "--force")
    print("ok   --force replaces the existing folder at commit")

    # 3. --force, but the folder is created by someone else during the run: left alone, results kept aside.
    a = Job(long_job + "--out made --force", d)
    check(a.wait_for_line("CNN: training"), "made: the run did not start training")
    os.makedirs(os.path.join(d, "made"))
    with open(os.path.join(d, "made", "user.txt"), "w") as f:
        f.write("mine")
    rc = a.finish()
    check(rc == 2, f"made: exit {rc}, expected 2: {a.err!r}")
    check("created by someone else" in a.err and "made.new-" in a.err, f"made: message {a.err!r}")
    check(listing(os.path.join(d, "made")) == ["user.txt"], "made: the user's folder was changed")
    kept = glob.glob(os.path.join(d, "made.new-*"))
    check(len(kept) == 1 and os.path.exists(os.path.join(kept[0], "results.json")) if kept else False,
          f"made: results not kept aside ({kept})")
    for k in kept:
        shutil.rmtree(k)
    check_clean(d, base + ["res", "old", "made"], "made")
    print("ok   --force on a folder created during the run: left alone, results kept aside")

    # 4. --force, and the existing folder is swapped for another one during the run: neither is deleted.
    os.makedirs(os.path.join(d, "swap"))
    open(os.path.join(d, "swap", "first.txt"), "w").close()
    a = Job(long_job + "--out swap --force", d)
    check(a.wait_for_line("CNN: training"), "swap: the run did not start training")
    os.rename(os.path.join(d, "swap"), os.path.join(d, "swap_moved"))
    os.makedirs(os.path.join(d, "swap"))
    open(os.path.join(d, "swap", "second.txt"), "w").close()
    rc = a.finish()
    check(rc == 2 and "replaced by another one" in a.err, f"swap: exit {rc}: {a.err!r}")
    check(listing(os.path.join(d, "swap")) == ["second.txt"], "swap: the new folder was changed")
    check(listing(os.path.join(d, "swap_moved")) == ["first.txt"], "swap: the moved folder was changed")
    for k in glob.glob(os.path.join(d, "swap.new-*")):
        shutil.rmtree(k)
    check_clean(d, base + ["res", "old", "made", "swap", "swap_moved"], "swap")
    print("ok   --force on a folder swapped during the run: neither deleted")

    # 5. A stale lock (its run crashed: no flock held) is taken over, then removed.
    with open(os.path.join(d, ".stale.lock"), "w") as f:
        f.write("999999\n")
    rc, _, err, _ = run("--device cpu --v1 v1.npz --no-figures --bootstrap 0 --no-cnn --quiet --out stale", d)
    check(rc == 0, f"stale lock: exit {rc}: {err}")
    check_clean(d, base + ["res", "old", "made", "swap", "swap_moved", "stale"], "stale lock")
    print("ok   a stale lock file is taken over")

    # 6. One-file outputs: a second writer exits 2 naming the first; a file created meanwhile is left alone.
    e = fresh("outputs_files")
    a = Job("train --device cpu --epochs 30 --save-model net.npz", e)
    check(a.wait_for(lambda: os.path.exists(os.path.join(e, ".net.npz.lock"))), "net: no lock file")
    rc, _, err, _ = run("train --device cpu --epochs 1 --save-model net.npz", e)
    check(rc == 2 and f"pid {a.p.pid}" in err, f"net: second writer exit {rc}: {err!r}")
    open(os.path.join(e, "net.npz"), "w").write("user")
    rc = a.finish()
    check(rc == 2 and "created by someone else" in a.err, f"net: exit {rc}: {a.err!r}")
    check(open(os.path.join(e, "net.npz")).read() == "user", "net: the user's file was replaced")
    kept = glob.glob(os.path.join(e, "net.npz.new-*"))
    check(len(kept) == 1, f"net: output not kept aside: {listing(e)}")
    for k in kept:
        os.remove(k)
    check_clean(e, ["net.npz"], "net")
    rc, _, err, _ = run("train --device cpu --epochs 1 --save-model net.npz --force --quiet", e)
    check(rc == 0 and open(os.path.join(e, "net.npz"), "rb").read(2) == b"PK", f"net --force: exit {rc}: {err}")
    check_clean(e, ["net.npz"], "net --force")
    print("ok   one-file outputs: claimed, never clobbered without --force")


# ---------------------------------------------------------------- interrupts
def group_interrupts():
    d = fresh("interrupts")
    make_v1(d)
    save_npy(os.path.join(d, "big.npy"), 2500, 2000)
    os.makedirs(os.path.join(d, "kept"))
    open(os.path.join(d, "kept", "old.txt"), "w").close()
    base = listing(d)
    main = "--device cpu --v1 v1.npz --no-figures "

    def interrupt(name, args, sig, stage, ready_line=None, ready=None, delay=0.3):
        job = Job(args, d)
        if ready_line is not None:
            started = job.wait_for_line(ready_line)
        else:
            started = job.wait_for(ready)
        if not check(started, f"{name}: never reached the stage to interrupt; stdout {''.join(job.out)!r}"):
            job.p.kill()
            job.finish()
            return
        time.sleep(delay)
        sent = time.monotonic()
        job.p.send_signal(sig)
        check_interrupted(job, sig, stage, sent, name)
        check_clean(d, base, name)
        print(f"ok   {name}: exit {128 + sig}, '{stage}', nothing left behind")

    interrupt("train SIGINT", "train --device cpu --epochs 100000 --save-model net.npz", signal.SIGINT, "training",
              ready=lambda: os.path.exists(os.path.join(d, ".net.npz.lock")), delay=0.5)
    interrupt("train SIGTERM", "train --device cpu --epochs 100000 --save-model net.npz", signal.SIGTERM,
              "training", ready=lambda: os.path.exists(os.path.join(d, ".net.npz.lock")), delay=0.5)
    interrupt("main job SIGINT in training", main + "--epochs 100000 --save-model m.npz --out res", signal.SIGINT,
              "training", ready_line="CNN: training")
    interrupt("main job SIGTERM in the bootstrap", main + "--no-cnn --bootstrap 1000000 --permutations 0 --out res",
              signal.SIGTERM, "the bootstrap", ready_line="statistics:")
    interrupt("main job SIGINT in the permutation test",
              main + "--no-cnn --bootstrap 0 --permutations 1000000 --out res", signal.SIGINT,
              "the permutation test", ready_line="statistics:")
    interrupt("main job --force SIGINT", main + "--epochs 100000 --out kept --force", signal.SIGINT, "training",
              ready_line="CNN: training")
    check(listing(os.path.join(d, "kept")) == ["old.txt"], "main job --force: the existing folder was changed")
    partial = lambda: bool(glob.glob(os.path.join(d, ".r.npy.partial-*", "r.npy.tmp.*")))
    interrupt("tiled rdm SIGTERM", "rdm --device cpu --responses big.npy --max-gpu-mem 1M --out r.npy",
              signal.SIGTERM, "the RDM", ready=partial, delay=0.2)
    interrupt("tiled rdm SIGINT", "rdm --device cpu --responses big.npy --max-gpu-mem 1M --out r.npy",
              signal.SIGINT, "the RDM", ready=partial, delay=0.2)

    # A second signal does not wait for a safe point: staging removed from the handler, exit at once.
    job = Job(main + "--epochs 100000 --out res", d)
    if check(job.wait_for_line("CNN: training"), "second signal: training never started"):
        os.kill(job.p.pid, signal.SIGSTOP)  # both signals pending: the second arrives before any safe point
        os.kill(job.p.pid, signal.SIGINT)
        os.kill(job.p.pid, signal.SIGTERM)
        os.kill(job.p.pid, signal.SIGCONT)
        rc = job.finish(timeout=60)
        check(rc in (130, 143), f"second signal: exit {rc}: {job.err!r}")
        check("interrupted again" in job.err, f"second signal: stderr {job.err!r}")
        check_clean(d, base, "second signal")
        print("ok   a second signal: exit at once, staging removed")


# ---------------------------------------------------------------- figures
FAKE_FIGURES = r'''
import os, sys, time
out = sys.argv[1]
with open(os.environ["FAKE_FIGURES_PID"], "w") as f:
    f.write(str(os.getpid()))
os.makedirs(os.path.join(out, "figures"), exist_ok=True)
open(os.path.join(out, "figures", "half.png"), "w").write("half")
time.sleep(float(os.environ.get("FAKE_FIGURES_SLEEP", "60")))
open(os.path.join(out, "report.html"), "w").write("<html></html>")
'''


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def group_figures():
    if not os.access("/usr/bin/python3", os.X_OK):
        print("SKIP: the figures need /usr/bin/python3")
        return 77
    d = fresh("figures")
    make_v1(d)
    base = listing(d)
    fake = os.path.join(WORK, "fake_figures")
    for m in ("matplotlib", "sklearn"):  # stand-ins: the import check passes, the stand-in script draws nothing
        os.makedirs(os.path.join(fake, "py", m), exist_ok=True)
        open(os.path.join(fake, "py", m, "__init__.py"), "w").close()
    os.makedirs(os.path.join(fake, "tools"), exist_ok=True)
    with open(os.path.join(fake, "tools", "make_figures.py"), "w") as f:
        f.write(FAKE_FIGURES)
    pidfile = os.path.join(fake, "child.pid")
    env = dict(os.environ, PYTHONPATH=os.path.join(fake, "py"), RSA_GPU_TOOLS_DIR=os.path.join(fake, "tools"),
               FAKE_FIGURES_PID=pidfile)
    args = "--device cpu --v1 v1.npz --epochs 2 --bootstrap 0 --out res"
    half = lambda: bool(glob.glob(os.path.join(d, ".res.partial-*", "figures", "half.png")))

    for sig, name in ((signal.SIGINT, "figures SIGINT"), (signal.SIGTERM, "figures SIGTERM")):
        if os.path.exists(pidfile):
            os.remove(pidfile)
        job = Job(args, d, env)
        if not check(job.wait_for(half), f"{name}: the figures never started: {''.join(job.out)}"):
            job.p.kill()
            job.finish()
            continue
        child = int(open(pidfile).read())
        sent = time.monotonic()
        job.p.send_signal(sig)
        check_interrupted(job, sig, "figures", sent, name)
        check("figures failed" not in job.err and "figures failed" not in "".join(job.out),
              f"{name}: reported as a figures failure")
        time.sleep(0.2)
        check(not alive(child), f"{name}: the figures child {child} is still running")
        check_clean(d, base, name)
        print(f"ok   {name}: an interruption, the child killed, nothing committed")

    # The child killed by someone else (not us): a figures failure, the results are kept.
    job = Job(args, d, env)
    if check(job.wait_for(half), "figures child killed: never started"):
        os.kill(int(open(pidfile).read()), signal.SIGTERM)
        rc = job.finish()
        out = "".join(job.out)
        check(rc == 0 and "make_figures.py failed (killed by SIGTERM" in out, f"child killed: exit {rc}, {out!r}")
        check(os.path.exists(os.path.join(d, "res", "results.json")), "child killed: results not kept")
        check_clean(d, base + ["res"], "child killed")
        print("ok   the figures child killed by someone else: a figures failure, results kept")
        shutil.rmtree(os.path.join(d, "res"))

    # The real make_figures.py, when its libraries exist.
    probe = subprocess.run(["/usr/bin/python3", "-c", "import matplotlib, sklearn"], capture_output=True)
    if probe.returncode != 0:
        print("SKIP (part): the real figures interruption needs python3-matplotlib and python3-sklearn")
        return 0
    env = dict(os.environ)
    env.pop("RSA_GPU_TOOLS_DIR", None)
    png = lambda: bool(glob.glob(os.path.join(d, ".res.partial-*", "figures", "*.png")))
    job = Job(args, d, env)
    if check(job.wait_for(png, timeout=120), "real figures: no figure appeared"):
        sent = time.monotonic()
        job.p.send_signal(signal.SIGINT)
        check_interrupted(job, signal.SIGINT, "figures", sent, "real figures SIGINT")
        check_clean(d, base, "real figures SIGINT")
        print("ok   real figures SIGINT: an interruption, nothing committed")
    return 0


# ---------------------------------------------------------------- disk full
def group_diskfull():
    mnt = tempfile.mkdtemp(prefix="rsa_gpu_full_", dir=WORK)
    inner = [sys.executable, os.path.abspath(__file__), BIN, "diskfull-inner", mnt]
    for prefix in (["unshare", "-rm"], ["unshare", "-m"]):
        if shutil.which(prefix[0]) is None:
            break
        probe = subprocess.run(prefix + ["sh", "-c", f"mount -t tmpfs -o size=64k tmpfs '{mnt}'"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            p = subprocess.run(prefix + inner, text=True)
            return p.returncode
    print("SKIP: cannot mount a small tmpfs here (no unshare, or mount namespaces / tmpfs mounts are not allowed)")
    return 77


def group_diskfull_inner(mnt):
    """Inside a private mount namespace: a 256 KiB tmpfs on mnt, outputs written there."""
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        print("SKIP: mount failed: " + r.stderr.strip())
        return 77
    src = fresh("diskfull_inputs")
    make_v1(src)
    save_npy(os.path.join(src, "x.npy"), 400, 50)
    full = os.path.join(mnt, "out")
    os.makedirs(full)
    cases = [
        (f"rdm --device cpu --responses {src}/x.npy --out r.npy", "r.npy"),
        (f"rdm --device cpu --responses {src}/x.npy --max-gpu-mem 300K --out r.npy", "r.npy"),
        (f"synthetic --device cpu --neurons 300 --out s.npz", "s.npz"),
        (f"--device cpu --v1 {src}/v1.npz --no-figures --bootstrap 0 --epochs 2 --out res", "res"),
    ]
    for cmd, target in cases:
        rc, out, err, _ = run(cmd, full)
        ok = check(rc == 1, f"disk full '{cmd}': exit {rc}, expected 1: {err!r}")
        ok &= check("No space left on device" in err, f"disk full '{cmd}': stderr lacks the cause: {err!r}")
        ok &= check(target in err and ".partial-" not in err, f"disk full '{cmd}': message does not name "
                                                               f"'{target}': {err!r}")
        check_clean(full, [], f"disk full '{cmd}'")
        if ok:
            print(f"ok   disk full: {cmd}  ->  {err.strip().splitlines()[-1]}")
    subprocess.run(["umount", mnt])
    return 0


# ---------------------------------------------------------------- main
def main():
    global WORK
    if not BIN or not os.access(BIN, os.X_OK):
        print(__doc__)
        return 2
    WORK = tempfile.mkdtemp(prefix="rsa_gpu_reliability_")
    code = 0
    try:
        if GROUP == "diskfull-inner":
            code = group_diskfull_inner(sys.argv[3])
        else:
            groups = {"options": group_options, "outputs": group_outputs, "interrupts": group_interrupts,
                      "figures": group_figures, "diskfull": group_diskfull}
            for name, fn in groups.items():
                if GROUP in (name, "all"):
                    t0 = time.monotonic()
                    r = fn()
                    print(f"-- {name}: {time.monotonic() - t0:.1f} s", flush=True)
                    if r == 77 and GROUP != "all":
                        code = 77
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        return 1
    return code


WORK = ""
if __name__ == "__main__":
    sys.exit(main())
