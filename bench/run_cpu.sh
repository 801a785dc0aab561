#!/usr/bin/env bash
# CPU benchmarks with their peers in the same run: RDM (CPU twin vs numpy). Usage: bench/run_cpu.sh [S N repeats]
set -euo pipefail
cd "$(dirname "$0")/.."
S=${1:-4598}; N=${2:-23589}; R=${3:-3}
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores), $(date -u +%Y-%m-%d)"
ours=$(./build/bench/bench_rdm "$S" "$N" "$R" | tee /dev/stderr | sed -n 's/^RESULT rsa_gpu_cpu_rdm_ms //p')
peer=$(/usr/bin/python3 bench/peer_rdm_numpy.py "$S" "$N" "$R" | tee /dev/stderr | sed -n 's/^RESULT numpy_rdm_ms //p')
python3 -c "print(f'RDM S=$S N=$N: rsa_gpu CPU $ours ms, numpy $peer ms, speed-up {float($peer)/float($ours):.2f}x')"
