// Helpers shared by the developer benchmarks, as thin names over the workload code of `rsa_gpu bench`
// (include/rsa_gpu/bench_workloads.h, in librsa_core): the median of timed repeats after a warm-up (time_runs),
// training throughput (train_once) and the whole tutorial analysis (tutorial_once: run_job_stages), so the programs
// here and the command time the same work the same way.
#pragma once
#include <utility>

#include "rsa_gpu/bench_workloads.h"

namespace rsa_bench {

using rsa::bench::Clock;
using rsa::bench::seconds_since;

// The median wall time (ms) of `repeats` runs of f after one untimed warm-up run.
template <typename F>
double median_ms(int repeats, F&& f) {
    return rsa::bench::time_runs(1, repeats, [&](int) {
               f();
               return -1.0;
           }).median *
           1e3;
}

}  // namespace rsa_bench
