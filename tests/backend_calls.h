// One-item calls on a Backend for tests: the RDM of a host matrix through the shared layer (compute_rdm) as a host
// Matrix, one comparison, one CKA form (the Backend interface itself takes Arrays and batches); and plans of a forced
// shape for the engines' own tests.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/rdm_engine.h"

namespace rsa_test {

// A plan of the given shape: neuron blocks of K columns, tiles of T rows (T = 0: in memory).
inline rsa::MemoryPlan plan_of(int64_t S, int64_t N, int64_t K, int64_t T) {
    rsa::MemoryPlan p;
    p.kind = T > 0 ? rsa::PlanKind::Tiled : (K < N ? rsa::PlanKind::Streamed : rsa::PlanKind::OneShot);
    p.tiled = T > 0;
    p.streamed = K < N;
    p.stimuli = S;
    p.neurons = N;
    p.neuron_block = std::min(K, N);
    p.neuron_blocks = (N + p.neuron_block - 1) / p.neuron_block;
    p.row_tile = T > 0 ? std::min(T, S) : S;
    p.row_tiles = (S + p.row_tile - 1) / p.row_tile;
    return p;
}

inline rsa::Matrix rdm_of(rsa::Backend& b, const rsa::Array& x, const rsa::RdmOptions& o, const std::string& what) {
    const rsa::RdmResult r = rsa::compute_rdm(b, x, o, what);
    return r.rdm.empty() ? rsa::Matrix() : r.rdm.to_matrix();
}

inline rsa::CompareResult compare_one(rsa::Backend& b, const rsa::Array& a, const rsa::Array& c, rsa::Measure m) {
    return b.compare(a, {c}, {m}).at(0).at(0);
}

inline double pearson_of(rsa::Backend& b, const rsa::Array& a, const rsa::Array& c) {
    return compare_one(b, a, c, rsa::Measure::Pearson).value;
}

// One form of CKA; the debiased form of fewer than 4 stimuli is an InputError here, as on the command line.
inline double cka_one(rsa::Backend& b, const rsa::Array& x, const rsa::Array& y, bool debiased) {
    rsa::check_cka_shapes(x.rows(), x.cols(), y.rows(), y.cols(), debiased);
    const rsa::CkaResult r = b.cka(x, y);
    return debiased ? r.debiased : r.plain;
}

}  // namespace rsa_test
