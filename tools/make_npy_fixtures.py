#!/usr/bin/python3
"""Write the tiny .npy/.npz fixtures that tests/test_npy.cpp reads (tests/data/npy/).

Values are arange-based so the test can recompute them. Run with a python that has numpy:
    /usr/bin/python3 tools/make_npy_fixtures.py [output_folder]
"""
import io
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "data", "npy")


def path(name):
    return os.path.join(OUT, name)


def save(name, arr):
    np.save(path(name), arr, allow_pickle=False)


def save_version(name, arr, version):
    with open(path(name), "wb") as f:
        np.lib.format.write_array(f, arr, version=version, allow_pickle=False)


def write_bytes(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


def npy_image(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def main():
    os.makedirs(OUT, exist_ok=True)

    # Good inputs. Floats: 2x3, value (i*3+j)*0.5 - 1 in C order.
    save("f4_2x3.npy", (np.arange(6, dtype="<f4") * 0.5 - 1).reshape(2, 3))
    save("f8_2x3.npy", (np.arange(6, dtype="<f8") * 0.5 - 1).reshape(2, 3))
    # Fortran-order 3x4 float64 holding C-order value i*4+j + 0.25.
    save("f8_fortran_3x4.npy", np.asfortranarray(np.arange(12, dtype="<f8").reshape(3, 4) + 0.25))
    # Fortran-order 2x3x2 int16 (3-D): C-order value i*6+j*2+k.
    save("i2_fortran_2x3x2.npy", np.asfortranarray(np.arange(12, dtype="<i2").reshape(2, 3, 2)))
    # Integers, 1-D, values arange(-3, 3) (signed) / arange(6) * 7 (unsigned), plus one extreme value.
    for code in ("i1", "i2", "i4", "i8"):
        arr = np.arange(-3, 3, dtype=np.dtype(code).newbyteorder("<"))
        save("%s.npy" % code, arr)
    for code in ("u1", "u2", "u4", "u8"):
        arr = np.arange(6, dtype=np.dtype(code).newbyteorder("<")) * 7
        save("%s.npy" % code, arr)
    save("i8_big.npy", np.array([-(2 ** 40), 2 ** 40], dtype="<i8"))
    save("b1.npy", np.array([True, False, True, True], dtype="|b1"))
    save("scalar_0d.npy", np.array(3.5, dtype="<f8"))
    save("vec_f4_5.npy", np.arange(5, dtype="<f4") * 2)
    save("col_f4_4x1.npy", (np.arange(4, dtype="<f4") + 1).reshape(4, 1))
    save("empty_0x3.npy", np.zeros((0, 3), dtype="<f4"))
    save_version("v2_f4_2x3.npy", (np.arange(6, dtype="<f4") * 0.5 - 1).reshape(2, 3), (2, 0))
    save_version("v3_f4_2x3.npy", (np.arange(6, dtype="<f4") * 0.5 - 1).reshape(2, 3), (3, 0))

    # Bad inputs.
    save("be_f4.npy", np.arange(3, dtype=">f4"))
    save("f2.npy", np.arange(3, dtype="<f2"))
    save("c8.npy", np.arange(3, dtype="<c8"))
    save("str_u3.npy", np.array(["ab", "cde"], dtype="<U3"))
    np.save(path("object.npy"), np.array([1, "x"], dtype=object), allow_pickle=True)
    nan = (np.arange(6, dtype="<f4")).reshape(2, 3)
    nan[1, 2] = np.nan
    save("nan_2x3.npy", nan)
    inf = np.arange(5, dtype="<f4")
    inf[3] = np.inf
    save("inf_vec5.npy", inf)
    good = npy_image((np.arange(6, dtype="<f8") * 0.5 - 1).reshape(2, 3))
    write_bytes("truncated.npy", good[:-5])  # 43 of the 48 data bytes
    write_bytes("bad_magic.npy", b"PK\x03\x04 this is not an npy file at all\n")
    # Valid preamble, header cut mid-dict (padded to the declared length so only the text is wrong).
    header = b"{'descr': '<f4', 'fortran_order': Fals, 'shape': (2, 3), }"
    header += b" " * (64 - 10 - len(header) - 1) + b"\n"
    write_bytes("corrupt_header.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(24))

    # npz: stored and deflated members.
    np.savez(path("stored.npz"), a=np.arange(6, dtype="<f4").reshape(2, 3), b=np.arange(3, dtype="<f8"))
    np.savez_compressed(path("deflated.npz"), x=np.zeros(64, dtype="<f4"), y=np.arange(4, dtype="<i4"))
    write_bytes("not_zip.npz", b"this is plain text, not a zip archive\n")
    with open(path("stored.npz"), "rb") as f:
        data = f.read()
    write_bytes("truncated.npz", data[: len(data) // 2])


if __name__ == "__main__":
    main()
