// Work spread over ranks (MPI processes launched by mpirun or SLURM's srun): the communicator the engine talks to,
// the agreement that turns any rank's failure into the same error on every rank, and the split of counted work
// (bootstrap resamples, permutations) into per-rank ranges whose union is the single-process run.
//
// The process has one communicator, world(): a single process (rank 0 of 1, every collective a copy) unless the
// rsa_gpu binary was built with MPI (RSA_GPU_MPI) and started by a launcher (host/mpi_comm.cpp sets it then). The
// library itself links no MPI: the Python module and a build without MPI run the same code on world()'s single
// process. launched() tells a run under a launcher (even with one rank) from a plain run: only a launched run
// prints the `distributed: K ranks, ...` line and goes through the distributed paths.
//
// Failure behaviour (issue 13): work between two collectives runs inside agreed(), which catches what a rank throws
// and makes every rank agree on the outcome; when any rank failed, every rank throws the first failing rank's error
// (the same kind: InputError exit 2, RuntimeError exit 1, Interrupted 128 + signal), its message prefixed
// "rank R: ", so that all ranks leave together, rank 0 alone prints it and removes its staging output. A rank that
// dies (killed) takes the job down through the launcher; every rank then exits at the first signal, removing its
// registered staging paths from the signal handler (interrupt.h: set_exit_on_first_signal).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "rsa_gpu/interrupt.h"

namespace rsa {

class Comm {
public:
    virtual ~Comm() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    // "MPI (Open MPI v4.1.4, ...)" or "single process".
    virtual std::string name() const = 0;
    // Whether a launcher started this process (an MPI run, possibly of one rank).
    virtual bool launched() const = 0;
    // The GPU this rank should use when --device auto: its rank among the ranks of its node (0 for one process).
    virtual int local_rank() const = 0;
    // The ranks on this rank's node (1 for one process).
    virtual int local_size() const = 0;

    virtual void barrier() = 0;
    // bytes from `root` into every rank's `data` (`bytes` equal on every rank).
    virtual void broadcast(void* data, uint64_t bytes, int root) = 0;
    // Element-wise sums (and maxima) over the ranks, the result on every rank. The order of the sums is the
    // library's (fixed for a given number of ranks).
    virtual void allreduce_sum(double* data, uint64_t count) = 0;
    virtual void allreduce_max(int64_t* data, uint64_t count) = 0;
    // Element-wise sums into `root`'s data (other ranks' data unchanged): the partial correlations of the
    // neuron-split RDM. Counts beyond 2^30 are sent in pieces.
    virtual void reduce_sum(double* data, uint64_t count, int root) = 0;
    // Rows moving between ranks: each rank lists what it sends to each peer and what it receives from each peer
    // (row-major, `cols` floats per row). The lists must pair up: what rank a sends to rank b, in order, is what b
    // receives from a, in order (every rank computes both sides from the same plan). Transfers to oneself are copies.
    // `on_received(i)`, when given, is called as soon as receives[i] has arrived (on the thread that runs the
    // exchange, in the order of arrival), so that a caller running the exchange in the background can use each
    // block of rows as it comes (the distributed RDM's tiles overlap the exchange).
    struct RowTransfer {
        int peer = 0;
        float* data = nullptr;  // sends: read from; receives: written to
        int64_t rows = 0;
    };
    virtual void exchange_rows(const std::vector<RowTransfer>& sends, const std::vector<RowTransfer>& receives,
                               int64_t cols, const std::function<void(size_t)>& on_received) = 0;
    // Whether exchange_rows may run on a thread of its own while the calling thread makes no other call on this
    // communicator (MPI: the library gave MPI_THREAD_SERIALIZED or more); otherwise the exchange runs in the
    // caller's thread and nothing overlaps it.
    virtual bool exchange_in_background() const { return true; }
    // Every rank's `mine` concatenated in rank order on `root` (other ranks get an empty vector); counts may differ.
    virtual std::vector<double> gather(const std::vector<double>& mine, int root) = 0;
    // The same on every rank.
    virtual std::vector<double> allgather(const std::vector<double>& mine) = 0;
    // Ends every rank of the job at once with `exit_code` (the last resort when ranks can no longer agree).
    [[noreturn]] virtual void abort(int exit_code) = 0;
};

// The transfers of exchange_rows from `rank` to itself, as copies (every communicator's own part), each receive's
// `on_received` called after its copy.
void copy_to_self(int rank, const std::vector<Comm::RowTransfer>& sends,
                  const std::vector<Comm::RowTransfer>& receives, int64_t cols,
                  const std::function<void(size_t)>& on_received);

// The process's communicator (a single process until set_world).
Comm& world();
// Installs the launcher's communicator (host/mpi_comm.cpp, at start-up of the binary).
void set_world(std::unique_ptr<Comm> comm);
// The one-process communicator (the default world, and for tests).
std::unique_ptr<Comm> make_single_comm();

// The rank and the number of ranks a launcher gave this process, from its variables (Open MPI's OMPI_COMM_WORLD_*,
// PMIx's PMIX_RANK, PMI's PMI_RANK / PMI_SIZE), before and without MPI: -1 when no launcher started it (or
// RSA_GPU_MPI=0 says to ignore it); launcher_size() 0 when the launcher does not say.
int launcher_rank();
int launcher_size();

// Whether this run is spread by a launcher (world().launched()).
inline bool distributed_run() { return world().launched(); }
// Rank 0 of a launched run, or a plain run: the process that prints and writes outputs.
inline bool printing_rank() { return world().rank() == 0; }

// The rule every distributed step follows: collectives are matched by order, not by call site, so every rank calls
// the same collectives in the same order; work that may fail on one rank alone (its own memory, device or share of
// the data) runs inside agreed() and contains no collective of its own, and checks that every rank makes alike on the
// same data may throw outside it (every rank then throws the same error at the same point).
//
// Runs `work` on every rank of `comm`, then agrees (one small collective) on the outcome: when every rank
// succeeded it returns; otherwise every rank throws the error of the lowest failing rank, of that error's kind, its
// message prefixed "rank R: " (for more than one rank). `phase` names the step in the message when the error is not
// an InputError ("computing the RDM tiles").
void agreed(Comm& comm, const char* phase, const std::function<void()>& work);
// Whether agreed() threw on this rank (every rank knows the error: rank 0 prints it, the others stay silent). An
// error that was not agreed leaves the other ranks behind: the command line prints it with its rank and ends the job
// with Comm::abort.
bool failure_was_agreed();

// Rank 0's staging paths (each a folder or a file: an output's staging folder and its lock), registered on every
// other rank as well, so that when rank 0 itself is killed the others, ended by the launcher at the first signal,
// remove them (interrupt.h). Called by every rank together; `paths` count on rank 0 only. The registrations last as
// long as the returned vector (they only register: nothing is removed on the normal path).
std::vector<StagingRegistration> register_root_staging(Comm& comm,
                                                       const std::vector<std::pair<std::string, bool>>& paths);

// The part [first, first + count) of `total` counted items (resamples, permutations) that `rank` of `ranks` runs:
// contiguous, in rank order, sizes differing by at most one. Gathering every rank's results in rank order gives the
// single-process order.
struct SampleRange {
    int64_t first = 0, count = 0;
};
SampleRange rank_range(int64_t total, int rank, int ranks);

class Array;
class Backend;

// Collectives over device memory (issue 13: NCCL for device-side collectives when built with it): the partial
// Gram matrices of the neuron-split RDM summed GPU to GPU, without a trip through host memory. One per run, made by
// make_device_collective on every rank of the communicator together; its calls are collectives too (every rank
// calls them in the same order with the same shapes).
class DeviceCollective {
public:
    virtual ~DeviceCollective() = default;
    // Element-wise float sum of a device-resident rows x cols Array over the ranks into `root`'s Array, in place,
    // on the backend's stream (waited for before returning); other ranks' arrays unchanged. Every rank's Array must
    // have the same shape and a copy on the rank's device, and root's Array no host copy (it would go stale); a
    // rank that breaks this makes every rank throw (RuntimeError naming the rank) before any data moves.
    virtual void reduce_sum(Array& a, int root) = 0;
    // The float64 sum over the ranks of weight_r * (complement ? 1 - a_r : a_r), a_r this rank's device-resident
    // rows x cols Array and weight_r its own weight, on every rank's host (rows x cols, row-major): the neuron-split
    // RDM's partial correlations (distributed_rdm.h) weighted and summed on the devices (ncclAllReduce in float64).
    // Every rank calls it with the same shape (checked as for reduce_sum).
    virtual std::vector<double> allreduce_weighted(const Array& a, double weight, bool complement) = 0;
    // "NCCL 2.27.7 (4 ranks)".
    virtual std::string name() const = 0;
};

// The device collective of `comm` over `backend`'s GPU (NCCL through the CUDA plugin), made on every rank together:
// rank 0 creates an NCCL unique id, broadcasts it with comm.broadcast, and every rank joins the NCCL communicator
// on backend.device(). Null, with `why` saying why, when the run is not launched, has one rank, any rank's backend
// is not a GPU, or any rank's plugin was built without NCCL (every rank agrees on null: the caller then sums through
// host memory with comm.reduce_sum). A failure of NCCL itself is thrown on every rank (agreed()).
std::unique_ptr<DeviceCollective> make_device_collective(Comm& comm, Backend& backend, std::string* why);

}  // namespace rsa
