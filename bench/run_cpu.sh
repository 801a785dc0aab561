#!/usr/bin/env bash
# CPU benchmarks with their peers in the same run: RDM (CPU twin vs numpy). Usage: bench/run_cpu.sh [S N repeats]
set -euo pipefail
cd "$(dirname "$0")/.."
S=${1:-4598}; N=${2:-23589}; R=${3:-3}
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores), $(date -u +%Y-%m-%d)"
ours=$(./build/bench/bench_rdm "$S" "$N" "$R" | tee /dev/stderr | sed -n 's/^RESULT rsa_gpu_cpu_rdm_ms //p')
peer=$(/usr/bin/python3 bench/peer_rdm_numpy.py "$S" "$N" "$R" | tee /dev/stderr | sed -n 's/^RESULT numpy_rdm_ms //p')
python3 -c "print(f'RDM S=$S N=$N: rsa_gpu CPU $ours ms, numpy $peer ms, speed-up {float($peer)/float($ours):.2f}x')"
ours=$(./build/bench/bench_train | tee /dev/stderr)
peer=$(/usr/bin/python3 bench/peer_tutorial_torch.py 2 cpu | tee /dev/stderr)
get() { echo "$1" | sed -n "s/^RESULT $2 //p"; }
python3 -c "
o_img=float('$(get "$ours" rsa_gpu_cpu_train_images_per_s)'); p_img=float('$(get "$peer" torch_train_images_per_s)')
o_s=float('$(get "$ours" rsa_gpu_cpu_tutorial_s)'); p_s=float('$(get "$peer" torch_tutorial_s)')
print(f'training batch 100: rsa_gpu CPU {o_img:.0f} images/s, PyTorch {p_img:.0f} images/s, {o_img/p_img:.2f}x')
print(f'whole tutorial analysis: rsa_gpu CPU {o_s:.3f} s, PyTorch original {p_s:.3f} s, {p_s/o_s:.2f}x faster')"
