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
# RDM comparison measures at S and the inference statistics (bootstrap, 3 models: S = 500 x 1,000 resamples and
# S x 100; permutation test: S = 500 x 1,000): CPU twins vs numpy / scipy (Kendall: ours tau-a, scipy tau-b).
ours=$(./build/bench/bench_measures "$S" "$R" | tee /dev/stderr)
peer=$(/usr/bin/python3 bench/peer_measures_numpy.py "$S" "$R" | tee /dev/stderr)
for c in "pearson|Pearson S=$S" "spearman|Spearman S=$S" "kendall|Kendall S=$S (tau-a vs scipy tau-b)" \
         "cosine|cosine S=$S" "bootstrap_small|bootstrap S=500 R=1000 3 models" \
         "bootstrap_large|bootstrap S=$S R=100 3 models (numpy: R=5 scaled)" "permutation_small|permutation S=500 P=1000"; do
  o=$(get "$ours" "rsa_gpu_cpu_${c%%|*}_ms"); p=$(get "$peer" "numpy_${c%%|*}_ms")
  python3 -c "print(f'${c#*|}: rsa_gpu CPU $o ms, numpy/scipy $p ms, speed-up {float($p)/max(float($o), 0.05):.2f}x')"
done
o=$(get "$ours" rsa_gpu_cpu_bootstrap_small_ms)
python3 -c "print(f'bootstrap S=500 R=1000 3 models: rsa_gpu CPU $o ms vs rsatoolbox eval_bootstrap_pattern 122 s (spec/performance.md, not this run): {122e3/float($o):.0f}x')"
