// RDMs at scale: precision choice (exact FP32 or TF32 tensor-core inputs), a memory plan that keeps the
// whole problem on the device when it fits, else streams the input in neuron blocks (output on the device),
// else tiles the output onto disk (a memory-mapped .npy), and the CPU twins of the streamed and tiled
// algorithms. The GPU side is kernels/rdm_scale.cuh (rdm_scaled). Semantics are those of rdm.h: rows
// z-scored with the population SD (statistics accumulated in double), M = 1 - Z Z^T / N, full symmetric;
// a zero-variance row becomes a NaN row and column and is reported in constant_rows (the caller decides
// between failing and keeping NaN, as with RdmOptions::constant_rows).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/matrix.h"

namespace rsa {

// ---------------------------------------------------------------- precision
// FP32: exact FP32 products (cuBLAS pedantic math, OpenBLAS on the CPU).
// TF32: z rounded to TF32 (10-bit mantissa, round to nearest even) and multiplied on tensor cores with FP32
//       accumulation; the CPU twin rounds z the same way before the FP32 SYRK, so both compute the same
//       products (TF32 x TF32 is exact in FP32) and differ only in accumulation order.
enum class Precision { FP32, TF32 };
Precision parse_precision(const std::string& text);  // "fp32" / "tf32"; InputError otherwise
const char* precision_name(Precision p);             // "fp32" / "tf32"

// How the GPU computes the TF32 product (both kept so the benchmark can measure; see bench_rdm_scale_gpu):
// SyrkMathMode: cublasSsyrk with the handle's math mode set to CUBLAS_TF32_TENSOR_OP_MATH for the call
//               (restored afterwards); whether cuBLAS then uses tensor cores for SYRK is what the bench shows.
// GemmExStrips: cublasGemmEx with CUBLAS_COMPUTE_32F_FAST_TF32 over row strips of the upper triangle
//               (rows [i0, i1) x columns [i0, S)): (S + strip) / S times the SYRK FLOPs, always tensor cores.
enum class Tf32Variant { SyrkMathMode, GemmExStrips };
Tf32Variant parse_tf32_variant(const std::string& text);  // "syrk" / "gemmex"; InputError otherwise
const char* tf32_variant_name(Tf32Variant v);

// Round a float to TF32: keep the sign, the 8-bit exponent and the top 10 mantissa bits, round to nearest
// even on the float bits (the low 13 bits become zero). NaN and Inf pass through; a value that rounds past
// the largest finite float becomes Inf, as IEEE rounding does.
float round_to_tf32(float x);
void round_to_tf32(float* x, size_t n);

// ---------------------------------------------------------------- memory plan
enum class PlanKind { OneShot, Streamed, Tiled };
enum class Place { Device, Host, PinnedHost, Disk };
const char* plan_kind_name(PlanKind k);
const char* place_name(Place p);

struct MemoryPlan {
    PlanKind kind = PlanKind::OneShot;
    int64_t stimuli = 0, neurons = 0;  // S, N
    bool streamed = false;             // input copied to the device in neuron blocks (never all at once)
    bool tiled = false;                // output computed in tiles and written to disk
    int64_t neuron_block = 0;          // columns per block (N when the input is not streamed in blocks)
    int64_t neuron_blocks = 1;         // ceil(N / neuron_block)
    int64_t row_tile = 0;              // rows per output tile (S when not tiled)
    int64_t row_tiles = 1;             // ceil(S / row_tile)
    uint64_t input_bytes = 0;          // the whole S x N fp32 input
    Place input_place = Place::Device; // where the whole input lives while the RDM is computed
    uint64_t workspace_bytes = 0;      // device workspace: input/z blocks, tile buffers, row statistics
    Place workspace_place = Place::Device;
    uint64_t staging_bytes = 0;        // pinned host staging buffers (copy double buffers, tile read-back)
    uint64_t output_bytes = 0;         // S x S fp32
    Place output_place = Place::Device;
    uint64_t device_bytes = 0;         // what the plan allocates on the device in all
    uint64_t budget_bytes = 0;         // the device budget the plan was made against
};

// Device bytes per stimulus for the row statistics (mean and 1/SD in double, a constant-row flag).
constexpr uint64_t kRowStatBytes = 2 * sizeof(double) + sizeof(int);

// Pick the plan for an S x N input: one-shot when input, z (in place) and output fit the budget, else the
// input streamed in neuron blocks (output on the device), else output tiles on disk. The budget is
// device_free_bytes less a margin (64 MiB or 2%, whichever is larger, for cuBLAS and the context), capped by
// max_gpu_bytes when that is non-zero (--max-gpu-mem). min_kind skips cheaper kinds (the one-shot fallback
// re-plans with PlanKind::Streamed). RuntimeError when not even a tiled plan of 1 x 1 tiles fits.
MemoryPlan plan_rdm(int64_t S, int64_t N, uint64_t max_gpu_bytes, uint64_t device_free_bytes,
                    PlanKind min_kind = PlanKind::OneShot);
// A few human lines: plan, input, workspace, output (sizes and where each lives), device total vs budget.
std::string describe(const MemoryPlan& plan);
std::string format_bytes(uint64_t bytes);  // "84.6 MB", "1.20 GB"

// ---------------------------------------------------------------- row statistics
// Mean and 1/SD (population) of each row of x (S x N, row-major), accumulated in double over neuron blocks
// of `block` columns: each block's mean and sum of squared deviations (two passes over the block), merged
// with Chan et al.'s formula, so a large common offset costs no accuracy. A zero-variance row gets
// inv_sd = NaN (its z row is then NaN) and is listed in constant_rows.
struct RowStats {
    std::vector<double> mean, inv_sd;
    std::vector<int64_t> constant_rows;
};
RowStats row_stats_blocked_ref(const float* x, int64_t S, int64_t N, int64_t block);

// One row's Chan merge: (n_a, mean, m2) += a block of n_b values with block mean b_mean and sum of squared
// deviations b_m2. Shared by the CPU twin and the device kernel's semantics.
inline void chan_merge(double n_a, double& mean, double& m2, double n_b, double b_mean, double b_m2) {
    const double n = n_a + n_b, delta = b_mean - mean;
    mean += delta * (n_b / n);
    m2 += b_m2 + delta * delta * (n_a * n_b / n);
}

// z[r, c] = (float)((x[r, c] - mean[r]) * inv_sd[r]) for a rows x cols block (leading dimensions ldx, ldz),
// rounded to TF32 when precision is TF32.
void zscore_block_ref(const float* x, int64_t ldx, int64_t rows, int64_t cols, const double* mean,
                      const double* inv_sd, Precision precision, float* z, int64_t ldz);

// ---------------------------------------------------------------- CPU twins of the scaled paths
// Streamed twin: row statistics over neuron blocks, then for each block of `neuron_block` columns z-score it
// with the global statistics and accumulate rdm(upper) += -1/N Z_b Z_b^T (cblas_ssyrk, beta = 1) into an
// output initialised to 1, mirrored at the end. rdm: S x S. constant_rows may be null.
void rdm_chunked_ref(const float* x, int64_t S, int64_t N, int64_t neuron_block, Precision precision, float* rdm,
                     std::vector<int64_t>* constant_rows);

// Tiled twin: the same statistics, then tiles rows [i0, i1) x columns [j0, j1) for j0 >= i0 (row_tile rows
// each, the last tile uneven), each accumulated over neuron blocks with cblas_sgemm on z-scored row blocks,
// written with its transpose into a memory-mapped .npy at `path` (S x S, '<f4', C order) that is renamed into
// place only when complete. progress (may be empty) is called after each tile with (tiles done, total);
// an exception from it (or any failure) removes the temporary file and leaves `path` as it was.
using TileProgress = std::function<void(int64_t done, int64_t total)>;
void rdm_tiled_ref(const float* x, int64_t S, int64_t N, int64_t row_tile, int64_t neuron_block,
                   Precision precision, const std::string& path, std::vector<int64_t>* constant_rows,
                   const TileProgress& progress = {});

// Runs a plan on the CPU: one-shot and streamed fill `rdm` (resized to S x S); tiled writes `path`
// (RuntimeError when path is empty) and leaves `rdm` empty.
void rdm_scaled_ref(const float* x, int64_t S, int64_t N, const MemoryPlan& plan, Precision precision,
                    const std::string& path, Matrix* rdm, std::vector<int64_t>* constant_rows);

// ---------------------------------------------------------------- memory-mapped .npy output
// An S x S float32 .npy created at full size under a temporary name in the same folder, memory-mapped for
// writing; commit() msyncs, unmaps, closes and renames it to `path`. Destroyed without commit() (an
// exception), the temporary file is removed. RuntimeError naming the path on any failure. The temporary file is
// registered as a staging path (removed by a second SIGINT/SIGTERM, see interrupt.h), and write_tile() is a safe
// point: after SIGINT/SIGTERM it throws Interrupted (the temporary file is then removed as for any exception).
class MappedNpyWriter {
public:
    MappedNpyWriter(const std::string& path, int64_t rows, int64_t cols);
    ~MappedNpyWriter();
    MappedNpyWriter(const MappedNpyWriter&) = delete;
    MappedNpyWriter& operator=(const MappedNpyWriter&) = delete;
    float* data() { return data_; }  // rows x cols, C order
    int64_t rows() const { return rows_; }
    int64_t cols() const { return cols_; }
    // Copy a row-major tile (tr x tc, leading dimension ld) to rows [r0, r0 + tr) x cols [c0, c0 + tc); with
    // mirror also its transpose to rows [c0, ...) x cols [r0, ...). diagonal: the tile sits on the diagonal
    // (r0 == c0, tr == tc): only its upper triangle is read and mirrored, so the file is exactly symmetric.
    void write_tile(const float* tile, int64_t ld, int64_t r0, int64_t tr, int64_t c0, int64_t tc, bool mirror,
                    bool diagonal);
    void commit();
    const std::string& path() const { return path_; }

private:
    void abort() noexcept;
    std::string path_, tmp_;
    int fd_ = -1;
    void* map_ = nullptr;
    size_t map_bytes_ = 0;
    float* data_ = nullptr;
    int64_t rows_ = 0, cols_ = 0;
    bool committed_ = false;
    StagingRegistration reg_;
};

// The .npy v1.0 header (magic through the padded dict) for a float32 C-order (rows, cols) array, byte for
// byte what npy_bytes_f32 writes before the data.
std::string npy_header_f32(int64_t rows, int64_t cols);

// ---------------------------------------------------------------- options and result of the GPU entry point
struct ScaledRdmOptions {
    Precision precision = Precision::FP32;
    Tf32Variant tf32_variant = Tf32Variant::GemmExStrips;
    int64_t tf32_strip = 1024;        // rows per GemmEx strip
    uint64_t max_gpu_bytes = 0;       // device budget cap (0: none), --max-gpu-mem
    std::string output_path;          // .npy for a tiled result (required then); other plans also write it
                                      // when set
    bool poison = false;              // tests: fill device buffers and the host result with NaN first
    uint64_t assume_device_free_bytes = 0;  // tests: plan as if this much were free (0: ask the device)
};

struct ScaledRdmResult {
    MemoryPlan plan;                  // the plan that produced the result (after any fallback)
    bool fell_back = false;           // a one-shot (or streamed) attempt ran out of memory first
    Matrix rdm;                       // S x S unless the plan was tiled (then empty: see written_path)
    std::string written_path;         // set when the RDM was written to output_path
    std::vector<int64_t> constant_rows;
};

}  // namespace rsa
