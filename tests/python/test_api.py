"""The package's behaviour beyond values: in-place inputs, errors with the command line's wording, Ctrl-C,
import without CUDA, the CNN's weights, the tutorial's numbers."""
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

import rsa_gpu
from rsa_gpu import _core


# ---------------------------------------------------------------- arrays in place
def test_float32_c_input_reaches_the_engine_in_place(responses):
    a = rsa_gpu._arrays.as_host_f32(responses, "x")
    assert a is responses or a.ctypes.data == responses.ctypes.data
    assert _core.input_address(a) == responses.ctypes.data


def test_no_numpy_copy_of_a_large_float32_input(rng):
    x = rng.standard_normal((500, 20000)).astype(np.float32)  # 40 MB
    rsa_gpu.rdm(x[:10], device="cpu")  # warm up (backend made, modules imported)
    tracemalloc.start()
    m = rsa_gpu.rdm(x, device="cpu")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert m.shape == (500, 500)
    assert peak < x.nbytes / 20, f"numpy allocated {peak} bytes for a {x.nbytes}-byte input"


def test_result_owns_its_memory(responses):
    m = rsa_gpu.rdm(responses, device="cpu")
    assert m.flags.c_contiguous and m.flags.writeable
    m[0, 1] = 5.0  # ours to change
    assert rsa_gpu.rdm(responses, device="cpu")[0, 1] != 5.0


# ---------------------------------------------------------------- errors
def test_nan_is_a_value_error_naming_row_and_column(responses):
    x = responses.copy()
    x[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"x.*row 7.*column 3|x.*\(7, 3\)"):
        rsa_gpu.rdm(x, device="cpu")


def test_constant_rows_fail_or_nan(responses):
    x = responses.copy()
    x[4] = 2.0
    with pytest.raises(ValueError, match="4"):
        rsa_gpu.rdm(x, device="cpu")
    m = rsa_gpu.rdm(x, device="cpu", constant_rows="nan")
    assert np.isnan(m[4]).all() and np.isnan(m[:, 4]).all() and not np.isnan(m[0, 1])
    with pytest.raises(ValueError, match="constant_rows"):
        rsa_gpu.rdm(x, device="cpu", constant_rows="drop")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: rsa_gpu.rdm(x[0], device="cpu"), r"x: expected a 2-D array"),
        (lambda x: rsa_gpu.rdm(x[:2], device="cpu"), r"3 stimuli|at least 3"),
        (lambda x: rsa_gpu.rdm(x.astype(complex), device="cpu"), r"x: expected a real numeric array"),
        (lambda x: rsa_gpu.rdm(x, device="gpu"), r"--device"),
        (lambda x: rsa_gpu.rdm(x, precision="fp16", device="cpu"), r"fp16"),
        (lambda x: rsa_gpu.rdm(x, max_gpu_mem="lots", device="cpu"), r"max_gpu_mem"),
        (lambda x: rsa_gpu.compare(np.eye(4), np.eye(5), device="cpu"), r"4.*5|5.*4"),
        (lambda x: rsa_gpu.compare(np.eye(4), np.eye(4) + 1, "pearsonr", device="cpu"), r"pearsonr"),
        (lambda x: rsa_gpu.compare(np.ones((4, 4)), np.eye(4), device="cpu"), r"\ba\b"),
        (lambda x: rsa_gpu.cka(x, x[:10], device="cpu"), r"60.*10|10.*60"),
        (lambda x: rsa_gpu.bootstrap(np.eye(5), np.eye(5), n=0, device="cpu"), r"n: expected"),
        (lambda x: rsa_gpu.gratings([0.0], res=-1), r"res"),
        (lambda x: rsa_gpu.CNN().forward(np.zeros((2, 10, 10))), r"48 x 64"),
        (lambda x: rsa_gpu.CNN().forward(np.zeros((2, 48, 64)), layers=["fc7"]), r"fc7"),
        (lambda x: rsa_gpu.run_tutorial(epochs=0), r"epochs: expected an integer 1 to 1,000,000"),
        (lambda x: rsa_gpu.run_tutorial(momentum=1.0), r"momentum"),
        (lambda x: rsa_gpu.run_tutorial(cnn_kernels="fast"), r"cnn_kernels"),
        (lambda x: rsa_gpu.CNN().train(cnn_kernels="fast"), r"cnn_kernels"),
    ],
)
def test_bad_input_is_a_value_error(responses, call, match):
    with pytest.raises(ValueError, match=match):
        call(responses)


def test_unusable_gpu_is_a_runtime_error_naming_the_cause(responses):
    if len(rsa_gpu.devices()) > 1:
        pytest.skip("a GPU is usable here")
    with pytest.raises(RuntimeError, match="--device cpu"):
        rsa_gpu.rdm(responses, device=0)


# ---------------------------------------------------------------- Ctrl-C
def _sigint_after(seconds):
    t = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    t.start()
    return t


@pytest.mark.parametrize("what", ["bootstrap", "rdm"])
def test_ctrl_c_raises_keyboard_interrupt_within_a_second(rng, what):
    if what == "bootstrap":
        ref = rsa_gpu.rdm(rng.standard_normal((400, 50)).astype(np.float32), device="cpu")
        call = lambda: rsa_gpu.bootstrap(ref, [ref, ref], n=2_000_000, device="cpu")  # noqa: E731 (minutes)
    else:
        x = rng.random((1000, 40000), dtype=np.float32)
        call = lambda: [rsa_gpu.rdm(x, device="cpu", max_gpu_mem="32M") for _ in range(100)]  # noqa: E731
    # Python's own handler, as in a terminal session (a process started in the background inherits SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        t = _sigint_after(0.5)
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            call()
        t.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - start < 0.5 + 1.5
    # the session goes on: the next call is not interrupted
    m = rsa_gpu.rdm(rng.standard_normal((10, 20)), device="cpu")
    assert rsa_gpu.compare(m, m, device="cpu") == pytest.approx(1.0)


def test_python_sigint_handler_is_restored_after_a_call(responses):
    before = signal.getsignal(signal.SIGINT)
    rsa_gpu.rdm(responses, device="cpu")
    assert signal.getsignal(signal.SIGINT) is before


# ---------------------------------------------------------------- import without CUDA
def test_import_with_cuda_hidden(tmp_path):
    env = dict(os.environ, RSA_GPU_CUDA_PLUGIN=str(tmp_path / "missing" / "librsa_gpu_cuda.so"),
               CUDA_VISIBLE_DEVICES="")
    code = ("import numpy as np, rsa_gpu; x = np.random.default_rng(0).random((5, 9), dtype=np.float32); "
            "print(rsa_gpu.rdm(x).shape, rsa_gpu.devices(), rsa_gpu.devices.why)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(5, 5) ['cpu']" in out.stdout


def test_versions_and_version():
    assert rsa_gpu.__version__ == "0.1.0"
    v = rsa_gpu.versions()
    assert v.startswith("rsa_gpu 0.1.0") and "OpenBLAS" in v and "CUDA" in v


def _import_and_report(env):
    code = ("import os, rsa_gpu; line = [l for l in rsa_gpu.versions().splitlines() if l.startswith('OpenBLAS')][0]; "
            "print(line.rsplit('kernels: ', 1)[-1].rstrip(')')); print(os.environ.get('OPENBLAS_CORETYPE', '-'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    kernels, left_in_env = out.stdout.split()
    return kernels, left_in_env


def test_openblas_kernels_fixed_while_loading_and_environment_left_alone():
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "RSA_GPU_BLAS_CORETYPE")}
    kernels, left = _import_and_report(env)
    assert left == "-", "the import left OPENBLAS_CORETYPE in the environment"
    if rsa_gpu._blas.cpu_runs_skylakex():
        assert kernels == "SkylakeX"
    kernels, left = _import_and_report(dict(env, OPENBLAS_CORETYPE="Haswell"))
    assert (kernels, left) == ("Haswell", "Haswell")  # the user's choice stands
    kept, left = _import_and_report(dict(env, RSA_GPU_BLAS_CORETYPE="keep"))  # OpenBLAS's own choice
    assert left == "-"
    on_its_own = subprocess.run([sys.executable, "-c", "import ctypes, ctypes.util; lib = ctypes.CDLL("
                                 "ctypes.util.find_library('openblas')); lib.openblas_get_corename.restype = "
                                 "ctypes.c_char_p; print(lib.openblas_get_corename().decode())"],
                                env=env, capture_output=True, text=True, timeout=60).stdout.strip()
    if on_its_own:
        assert kept.lower() == on_its_own.lower()


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor: 0\nflags\t\t: fpu sse avx2 avx512f avx512cd avx512bw avx512dq avx512vl\n")
    assert rsa_gpu._blas.cpu_runs_skylakex(str(f))
    f.write_text("flags\t\t: fpu sse avx2 avx512f\n")
    assert not rsa_gpu._blas.cpu_runs_skylakex(str(f))
    assert not rsa_gpu._blas.cpu_runs_skylakex(str(tmp_path / "missing"))


# ---------------------------------------------------------------- the CNN
def test_cnn_state_dict_has_pytorch_names_and_shapes(tmp_path):
    net = rsa_gpu.CNN(seed=12, device="cpu")
    sd = net.state_dict()
    assert {k: v.shape for k, v in sd.items()} == {
        "conv.weight": (6, 1, 7, 7), "conv.bias": (6,), "fc.weight": (10, 288), "fc.bias": (10,),
        "out.weight": (1, 10), "out.bias": (1,)}
    bound = 1 / np.sqrt(288)
    assert np.abs(sd["fc.weight"]).max() <= bound and np.all(sd["conv.bias"] == 0)
    other = rsa_gpu.CNN(seed=1, device="cpu")
    images = rsa_gpu.gratings(np.linspace(-90, 90, 7), device="cpu")
    assert not np.allclose(other.forward(images)["fc"], net.forward(images)["fc"])
    other.load_state_dict(sd)
    np.testing.assert_array_equal(other.forward(images)["fc"], net.forward(images)["fc"])
    net.save(tmp_path / "m.npz")
    again = rsa_gpu.CNN.load(str(tmp_path / "m.npz"), device="cpu")
    np.testing.assert_array_equal(again.forward(images)["pool"], net.forward(images)["pool"])
    bad = dict(sd, **{"fc.bias": np.zeros(11)})
    with pytest.raises(ValueError, match=r"fc.bias has shape \(11,\)"):
        other.load_state_dict(bad)
    with pytest.raises(ValueError, match="missing keys"):
        other.load_state_dict({"conv.weight": sd["conv.weight"]})


def test_cnn_forward_layers_are_consistent():
    net = rsa_gpu.CNN(device="cpu")
    images = rsa_gpu.gratings([-45.0, 0.0, 45.0], device="cpu")
    a = net.forward(images, layers=["conv", "pool", "fc", "fc_relu", "out"])
    assert a["conv"].shape == (3, 6 * 48 * 64) and a["pool"].shape == (3, 288) and a["out"].shape == (3, 1)
    sd = net.state_dict()
    fc = a["pool"].astype(np.float64) @ sd["fc.weight"].T + sd["fc.bias"]
    np.testing.assert_allclose(a["fc"], fc, atol=1e-5)
    np.testing.assert_allclose(a["fc_relu"], np.maximum(a["fc"], 0))
    np.testing.assert_allclose(a["out"], a["fc_relu"] @ sd["out.weight"].T + sd["out.bias"], atol=1e-5)


def test_cnn_tutorial_training_prints_the_tutorials_losses():
    net = rsa_gpu.CNN(seed=12, device="cpu")
    losses = net.train()
    # README: epoch 5 4.10e-01, 10 5.17e-02, 15 1.32e-02, 20 2.27e-03, 25 8.15e-05
    np.testing.assert_allclose(losses[[4, 9, 14, 19, 24]], [4.10e-01, 5.17e-02, 1.32e-02, 2.27e-03, 8.15e-05],
                               rtol=6e-3)
    assert net.step_losses.shape == (250,) and net.train_accuracy[1] == 1000


def test_cnn_kernels_on_the_cpu_are_the_same_twin():
    # --cnn-kernels cudnn|exact choose the GPU's training path; the CPU twin is one (README: both accepted).
    angles = np.linspace(-80, 80, 32)
    images, labels = rsa_gpu.gratings(angles, device="cpu"), (angles > 0).astype(np.float32)
    runs = []
    for kernels in ("cudnn", "exact"):
        net = rsa_gpu.CNN(seed=5, device="cpu")
        runs.append(net.train(images, labels, epochs=2, batch=8, cnn_kernels=kernels))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_cnn_training_on_given_images_lowers_the_loss():
    net = rsa_gpu.CNN(seed=3, device="cpu")
    angles = np.linspace(-80, 80, 64)
    losses = net.train(rsa_gpu.gratings(angles, device="cpu"), (angles > 0).astype(np.float32), epochs=10,
                       batch=16, lr=1e-3, momentum=0.9)
    assert losses.shape == (10,) and losses[-1] < losses[0]


# ---------------------------------------------------------------- the tutorial
def test_run_tutorial_gives_the_command_lines_numbers(tmp_path):
    r = rsa_gpu.run_tutorial(device="cpu", bootstrap=200, permutations=200)
    # README: 'pool' 0.660, 'fc' 0.611, pixels 0.390 on the embedded synthetic V1 data
    assert r.value("pool") == pytest.approx(0.660, abs=5e-4)
    assert r.value("fc") == pytest.approx(0.611, abs=5e-4)
    assert r.value("pixels") == pytest.approx(0.390, abs=5e-4)
    assert set(r.rdms) == {"v1", "pool", "fc", "pixels"} and r.rdms["v1"].shape == (181, 181)
    assert r.value("pool") == pytest.approx(rsa_gpu.compare(r.rdms["v1"], r.rdms["pool"], device="cpu"), abs=1e-9)
    row = r.correlations[0]
    assert row["ci_low"] < row["value"] < row["ci_high"] and row["p_value"] == pytest.approx(1 / 201)
    assert "pool" in r.table()
    # the same job writing the command line's folder
    out = tmp_path / "out"
    w = rsa_gpu.run_tutorial(device="cpu", out=str(out), bootstrap=200, permutations=200, no_cnn=True)
    assert (out / "results.json").exists() and (out / "rdm_v1.npy").exists()
    assert w.value("pixels") == pytest.approx(r.value("pixels"), abs=1e-12)
    np.testing.assert_array_equal(w.rdms["v1"], r.rdms["v1"])
    with pytest.raises(ValueError, match="exists|--force|force"):
        rsa_gpu.run_tutorial(device="cpu", out=str(out), no_cnn=True, bootstrap=0, permutations=0)


def test_run_tutorial_on_arrays(rng):
    ori = np.arange(-90, 91, 2, dtype=np.float32)
    pref = rng.uniform(-90, 90, 200)
    resp = np.exp(2 * (np.cos(np.deg2rad(2 * (ori[:, None] - pref[None]))) - 1)) + 0.1 * rng.standard_normal(
        (ori.size, 200))
    r = rsa_gpu.run_tutorial((resp, ori), device="cpu", no_cnn=True, bootstrap=0, permutations=0)
    assert r.json["v1"]["stimuli"] == ori.size and r.json["v1"]["neurons"] == 200
    assert np.isfinite(r.value("pixels"))


def test_progress_only_when_asked(rng, capsys, monkeypatch):
    # Without progress=True nothing is drawn; with it the engine's reports reach the drawing callback (tqdm, or one
    # stderr line without tqdm), and the callback is removed afterwards.
    import rsa_gpu._api as api
    x = rng.standard_normal((40, 200)).astype(np.float32)
    ref = rsa_gpu.rdm(x, device="cpu")
    model = rsa_gpu.rdm(x + rng.standard_normal(x.shape).astype(np.float32), device="cpu")
    rsa_gpu.permutation(ref, model, n=3000, device="cpu")
    assert capsys.readouterr().err == ""
    seen = []
    real = api._core.set_progress

    def spy(cb):
        if cb is None:
            real(None)
            return
        def record(label, done, total, finished):
            seen.append((label, done, total, finished))
            cb(label, done, total, finished)
        real(record)

    monkeypatch.setattr(api._core, "set_progress", spy)
    rsa_gpu.permutation(ref, model, n=3000, device="cpu", progress=True)
    assert seen, "no progress reported"
    assert all(label == "permutations" and total == 3000 for label, _, total, _ in seen)
    assert seen[-1][3] is True and seen[-1][1] == 3000  # the bar ends complete
    rsa_gpu.bootstrap(ref, model, n=50, device="cpu", progress=True)
    assert any(label == "bootstrap" for label, _, _, _ in seen)
    n = len(seen)
    rsa_gpu.permutation(ref, model, n=100, device="cpu")  # not asked: the sink is gone
    assert len(seen) == n
