#!/usr/bin/env python3
"""CTest's own table, checked: every test labelled `gpu` holds the resource lock `gpu` (so GPU tests never overlap,
also under `ctest -j`) and a timeout of at most 240 s; the out-of-memory fallback test runs alone (RUN_SERIAL); and
test_backend_ops has its self-check and list entries. Usage: ctest_properties_test.py CTEST BUILD_DIR"""
import json
import subprocess
import sys

ctest, build = sys.argv[1], sys.argv[2]
table = json.loads(subprocess.run([ctest, "--test-dir", build, "--show-only=json-v1"], check=True,
                                  capture_output=True, text=True).stdout)
failures = []
tests = {}
for t in table["tests"]:
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    tests[t["name"]] = props
for name, props in tests.items():
    if "gpu" not in props.get("LABELS", []):
        continue
    if "gpu" not in props.get("RESOURCE_LOCK", []):
        failures.append(f"{name}: labelled gpu without RESOURCE_LOCK gpu")
    if not props.get("TIMEOUT") or float(props["TIMEOUT"]) > 240:
        failures.append(f"{name}: labelled gpu with timeout {props.get('TIMEOUT')} (at most 240 s)")
    if props.get("SKIP_RETURN_CODE") != 77:
        failures.append(f"{name}: labelled gpu without SKIP_RETURN_CODE 77")
gpu_tests = [n for n, p in tests.items() if "gpu" in p.get("LABELS", [])]
if any(n.startswith("test_") and n.endswith("_gpu") for n in gpu_tests):  # a CUDA build
    if not tests.get("test_rdm_scale_gpu_oom", {}).get("RUN_SERIAL"):
        failures.append("test_rdm_scale_gpu_oom: the out-of-memory test must run alone (RUN_SERIAL)")
    if "backend_ops" not in gpu_tests:
        failures.append("backend_ops: the GPU run of test_backend_ops is not registered")
for name in ("backend_ops_self_check", "backend_ops_list"):
    if name not in tests:
        failures.append(f"{name}: not registered")
for f in failures:
    print("FAIL:", f)
print(f"{len(gpu_tests)} gpu tests checked; {len(failures)} problem(s)")
sys.exit(1 if failures else 0)
