#!/usr/bin/env python3
"""Convert the original pickled `stringer_orientations.npy` (https://osf.io/ny4ut/download; a dict with sresp
neurons x trials and istim in radians, among others) to the trial-level .npz that rsa_gpu reads with --v1:
keys sresp (float32, neurons x trials) and istim (float32, trials, radians). numpy only.

Usage: python3 tools/convert_stringer.py stringer_orientations.npy stringer_trials.npz
Then:  rsa_gpu --v1 stringer_trials.npz [--trials]
"""
import os
import sys

import numpy as np


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    src, dst = argv[1], argv[2]
    try:
        obj = np.load(src, allow_pickle=True)
    except (OSError, ValueError) as e:
        sys.stderr.write(f"error: {src}: cannot read: {e}\n")
        return 2
    data = obj.item() if getattr(obj, "dtype", None) == object and obj.shape == () else obj
    if not isinstance(data, dict):
        sys.stderr.write(f"error: {src}: expected a pickled dict (np.load(..., allow_pickle=True).item())\n")
        return 2
    for key in ("sresp", "istim"):
        if key not in data:
            sys.stderr.write(f"error: {src}: no key '{key}'; keys present: {', '.join(sorted(data))}\n")
            return 2
    sresp = np.asarray(data["sresp"], dtype=np.float32)
    istim = np.asarray(data["istim"], dtype=np.float32).reshape(-1)
    if sresp.ndim != 2 or sresp.shape[1] != istim.shape[0]:
        sys.stderr.write(f"error: {src}: sresp has shape {sresp.shape} but istim has {istim.shape[0]} trials\n")
        return 2
    if not (np.isfinite(sresp).all() and np.isfinite(istim).all()):
        sys.stderr.write(f"error: {src}: sresp or istim holds NaN/Inf\n")
        return 2
    tmp = dst + ".tmp.npz"
    np.savez(tmp, sresp=sresp, istim=istim)
    os.replace(tmp, dst)
    print(f"wrote {dst}: sresp {sresp.shape[0]} neurons x {sresp.shape[1]} trials, istim in radians "
          f"[{istim.min():.3f}, {istim.max():.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
