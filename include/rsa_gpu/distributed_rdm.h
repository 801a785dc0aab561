// The RDM of a response matrix file spread over the ranks of a distributed run (distributed.h), on each rank's own
// backend and its one RDM engine (rdm_engine.h), in one of two modes:
//
//   rows (row-split): the upper triangle of the S x S RDM in tiles of T rows; the tiles (bi <= bj) are ordered along
//     a Morton (Z-order) curve, so that a contiguous run of them is a compact patch of the triangle reading few row
//     blocks, and cut into one contiguous run per rank with equal cost (a diagonal tile, half a SYRK, costs half).
//     Row statistics are per stimulus: each rank reads its share of the rows (positioned reads of the .npy), computes
//     their moments on its backend, and the moments are gathered on every rank, which then checks the input alike
//     (non-finite values, constant rows). Each rank keeps its share and receives from their owners the other rows of
//     the row blocks its tiles need (Comm::exchange_rows: the input is read from the file once in all) on a thread
//     of its own while its tiles run (each peer's blocks in the order that peer uses them; a band group waits only
//     for its own blocks; the groups on the rank's own rows go first), or, when they do not fit half its host
//     memory, reads its blocks from the file a band at a time; it runs its tiles with the engine's tiled plan restricted to them
//     (MemoryPlan::tile_mask), and writes each tile and its mirror straight into the one shared output .npy at their
//     offsets (pwrite: no two ranks write the same bytes). Entries equal the single-process RDM's up to the order of
//     the sums (tiles in GEMM instead of one SYRK): within 1e-6.
//   neurons (neuron-split): each rank reads a block of the columns (units) of every row; the row sums and then the
//     centred sums of squares are summed over the ranks (allreduce, in double), each rank z-scores its columns with
//     the global statistics and computes its partial G_r = Z_r Z_r^T / N with the engine (one-shot or streamed), and
//     the partials are summed in float64: on the GPUs with NCCL (DeviceCollective::allreduce_weighted) when every
//     rank runs on a GPU and the plugin has NCCL, else on rank 0 over MPI in host memory; rank 0 finishes 1 - G and
//     writes the file.
//     Needs the S x S RDM and its float64 partial in every rank's memory; for very wide inputs with moderate S.
//     Euclidean: each rank's squared distances over its units (from its block's own row norms), summed. A constant
//     RDM is not tested for (as for the single-process engine's tiled RDMs).
//   auto: neurons when the S x S result takes at most an eighth of a rank's memory and N >= 4 S, else rows.
//
// Rank 0 creates the output (the caller's staging path: header, full size) before any rank writes; every step
// between collectives runs inside agreed(), so a failure on any rank (bad input: found by every rank alike, before
// the heavy work) ends every rank with the same error and rank 0's caller removes the staging file. Mahalanobis and
// crossnobis RDMs are not distributed (the command runs them on rank 0 alone).
//
// Test hook (tests/mpi): with RSA_GPU_TEST_STALL_RANK=R and RSA_GPU_TEST_STALL_FILE=F, rank R writes its pid to F
// after its first tile and waits to be killed (the killed-rank test).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/distributed.h"
#include "rsa_gpu/rdm.h"

namespace rsa {

enum class DistributeMode { Auto, Rows, Neurons };
DistributeMode parse_distribute_mode(const std::string& text);  // auto|rows|neurons; InputError otherwise
const char* distribute_mode_name(DistributeMode mode);          // "auto", "rows", "neurons"

// The upper-triangle tiles (bi <= bj) of a side x side tile grid in Morton order, cut into `ranks` contiguous runs of
// (nearly) equal cost (diagonal tiles count half); [rank] -> tiles. Every tile exactly once.
std::vector<std::vector<std::pair<int64_t, int64_t>>> assign_upper_tiles(int64_t side, int ranks);

// One rank's share of the work.
struct RankShare {
    int64_t tiles = 0;              // row-split: tiles; neuron-split: 0
    int64_t first_column = 0, columns = 0;  // neuron-split: the rank's units
    double multiply_adds = 0.0;     // its part of the Gram products
    int64_t row_blocks = 0;         // row-split: distinct row blocks its tiles read
    uint64_t bytes_read = 0;        // from the input file (row statistics' share included)
    uint64_t bytes_written = 0;     // into the output file (row-split: its tiles and mirrors; neuron-split: rank 0)
    uint64_t memory_bytes = 0;      // host memory its largest step holds (input rows, tile buffers / the S x S partial)
    int64_t needed_rows = 0;        // row-split: the rows of its distinct row blocks
    uint64_t bytes_received = 0;    // row-split with the exchange: rows received from the other ranks
};

struct DistributedRdmPlan {
    DistributeMode mode = DistributeMode::Rows;  // resolved (never Auto)
    int ranks = 1;
    int64_t stimuli = 0, neurons = 0;            // S, N
    int64_t row_tile = 0, row_tiles = 0;         // row-split: T and ceil(S / T)
    // Row-split: each rank reads only its own share of the rows (rank_range(S)) and receives the rest of its row blocks
    // from their owners (Comm::exchange_rows), when its own rows and its row blocks fit half the host memory; else
    // every band group reads its blocks from the file.
    bool exchange = false;
    std::vector<std::vector<std::pair<int64_t, int64_t>>> tiles;  // row-split: [rank] its tiles
    std::vector<RankShare> shares;               // [rank]
    // "distributed: 3 ranks (MPI ...), row-split of the 3000 x 3000 RDM: 15 tiles of 600 rows, 5 per rank (...)"
    std::string summary(const std::string& comm_name) const;
    // One line per rank: its work, bytes read and written, memory.
    std::string rank_lines() const;
};

// The plan for an S x N input over `ranks` ranks with `rank_memory` bytes each (the host budget, or the device's for
// GPU ranks) and `row_tile_limit` (the largest tile the engine's tiled plan allows on the device; 0: none).
// InputError when the mode cannot run (neurons with an S x S result beyond a rank's memory).
DistributedRdmPlan plan_distributed_rdm(int64_t S, int64_t N, int ranks, DistributeMode mode,
                                        uint64_t rank_memory, int64_t row_tile_limit, uint64_t host_memory);

struct DistributedRdmResult {
    DistributedRdmPlan plan;
    std::vector<int64_t> nan_rows;  // rows (and columns) set NaN: constant, kept by ConstantRows::Nan
};

// The RDM of the S x N float32 (or float64) C-order .npy at `input` written to the .npy `output` (a staging path the
// caller owns on rank 0; rank 0 creates it). Called by every rank with the same arguments (`output` as rank 0 knows
// it). `on_plan` (rank 0) receives the summary line before any work and the per-rank lines for a large job. Returns
// on every rank once all succeeded; throws the agreed error otherwise.
DistributedRdmResult distributed_rdm_file(Comm& comm, Backend& backend, const std::string& input,
                                          const std::string& output, const RdmOptions& options, DistributeMode mode,
                                          const std::string& what);

// The in-memory RDM of x (S x N, the same on every rank) with its row moments, split by units over the ranks of
// `comm` (the neuron-split above, the sum on every rank): compute_rdm's path in a launched run of several ranks
// (the main job's and evaluate's RDMs). The engine's work runs inside agreed(). S x S on the host, NaN rows left to
// the caller.
Array distributed_rdm_in_memory(Comm& comm, Backend& backend, const Array& x, const RowMoments& moments,
                                const RdmOptions& options, const std::string& what);

}  // namespace rsa
