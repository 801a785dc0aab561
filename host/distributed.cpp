// The process's communicator (distributed.h): the single-process one, world() and set_world(), the agreement that
// makes every rank throw the first failing rank's error, and the split of counted work into rank ranges.
#include "rsa_gpu/distributed.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"

namespace rsa {

namespace {

class SingleComm final : public Comm {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    std::string name() const override { return "single process"; }
    bool launched() const override { return false; }
    int local_rank() const override { return 0; }
    int local_size() const override { return 1; }
    void barrier() override {}
    void broadcast(void*, uint64_t, int) override {}
    void allreduce_sum(double*, uint64_t) override {}
    void allreduce_max(int64_t*, uint64_t) override {}
    void reduce_sum(double*, uint64_t, int) override {}
    void exchange_rows(const std::vector<RowTransfer>& sends, const std::vector<RowTransfer>& receives, int64_t cols,
                       const std::function<void(size_t)>& on_received) override {
        for (const auto& t : sends)
            if (t.peer != 0) throw RuntimeError("exchange_rows: a single process has no rank " + std::to_string(t.peer));
        copy_to_self(0, sends, receives, cols, on_received);
    }
    std::vector<double> gather(const std::vector<double>& mine, int) override { return mine; }
    std::vector<double> allgather(const std::vector<double>& mine) override { return mine; }
    [[noreturn]] void abort(int exit_code) override { std::_Exit(exit_code); }
};

bool g_agreed_failure = false;

std::unique_ptr<Comm>& world_slot() {
    static std::unique_ptr<Comm> comm = make_single_comm();
    return comm;
}

// The kinds of failure agreed() carries between ranks.
enum Outcome : int64_t { kOk = 0, kInput = 1, kRuntime = 2, kOutOfMemory = 3, kInterrupted = 4 };

}  // namespace

void copy_to_self(int rank, const std::vector<Comm::RowTransfer>& sends,
                  const std::vector<Comm::RowTransfer>& receives, int64_t cols,
                  const std::function<void(size_t)>& on_received) {
    std::vector<const Comm::RowTransfer*> out;
    std::vector<size_t> in;
    for (const auto& t : sends)
        if (t.peer == rank) out.push_back(&t);
    for (size_t i = 0; i < receives.size(); ++i)
        if (receives[i].peer == rank) in.push_back(i);
    if (out.size() != in.size()) throw RuntimeError("exchange_rows: the transfers to this rank itself do not pair up");
    for (size_t k = 0; k < out.size(); ++k) {
        const Comm::RowTransfer& r = receives[in[k]];
        if (out[k]->rows != r.rows) throw RuntimeError("exchange_rows: a transfer to itself changes its size");
        std::memcpy(r.data, out[k]->data, static_cast<size_t>(r.rows * cols) * sizeof(float));
        if (on_received) on_received(in[k]);
    }
}

std::unique_ptr<Comm> make_single_comm() { return std::make_unique<SingleComm>(); }

Comm& world() { return *world_slot(); }

void set_world(std::unique_ptr<Comm> comm) { world_slot() = comm ? std::move(comm) : make_single_comm(); }

void agreed(Comm& comm, const char* phase, const std::function<void()>& work) {
    if (comm.size() == 1) {  // nothing to agree with: the error as thrown
        work();
        return;
    }
    int64_t outcome = kOk, signal = 0;
    std::string message;
    try {
        work();
    } catch (const Interrupted& e) {
        outcome = kInterrupted;
        signal = e.signal();
        message = e.during();
    } catch (const InputError& e) {
        outcome = kInput;
        message = e.what();
    } catch (const OutOfMemoryError& e) {
        outcome = kOutOfMemory;
        message = e.what();
    } catch (const std::bad_alloc&) {
        outcome = kOutOfMemory;
        message = "out of host memory (an allocation failed)";
    } catch (const std::exception& e) {
        outcome = kRuntime;
        message = e.what();
    }
    // The lowest failing rank: the maximum of size - rank over the failed ranks (0 when none failed).
    int64_t first = outcome == kOk ? 0 : comm.size() - comm.rank();
    comm.allreduce_max(&first, 1);
    if (first == 0) return;
    const int root = static_cast<int>(comm.size() - first);
    int64_t head[3] = {outcome, signal, static_cast<int64_t>(message.size())};
    comm.broadcast(head, sizeof head, root);
    message.resize(static_cast<size_t>(head[2]));
    if (head[2] > 0) comm.broadcast(message.data(), static_cast<uint64_t>(head[2]), root);
    g_agreed_failure = true;
    const std::string who = "rank " + std::to_string(root) + ": ";
    switch (head[0]) {
        case kInterrupted: throw Interrupted(static_cast<int>(head[1]), message + " (" + who.substr(0, who.size() - 2) + ")");
        case kInput: throw InputError(who + message);
        case kOutOfMemory: throw OutOfMemoryError(who + phase + ": " + message);
        default: throw RuntimeError(who + phase + ": " + message);
    }
}

namespace {
int env_int(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) return -1;
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    return (*end == 0 && x >= 0 && x < (1L << 30)) ? static_cast<int>(x) : -1;
}
bool launcher_ignored() {
    const char* off = std::getenv("RSA_GPU_MPI");
    return off && std::string(off) == "0";
}
}  // namespace

int launcher_rank() {
    if (launcher_ignored()) return -1;
    for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"}) {
        const int r = env_int(v);
        if (r >= 0) return r;
    }
    return -1;
}

int launcher_size() {
    if (launcher_rank() < 0) return -1;
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}) {
        const int n = env_int(v);
        if (n >= 0) return n;
    }
    return 0;
}

bool failure_was_agreed() { return g_agreed_failure; }

std::vector<StagingRegistration> register_root_staging(Comm& comm,
                                                       const std::vector<std::pair<std::string, bool>>& paths) {
    std::vector<StagingRegistration> regs;
    if (comm.size() == 1) return regs;
    uint64_t count = comm.rank() == 0 ? paths.size() : 0;
    comm.broadcast(&count, sizeof count, 0);
    for (uint64_t i = 0; i < count; ++i) {
        std::string path = comm.rank() == 0 ? paths[i].first : std::string();
        uint64_t head[2] = {path.size(), comm.rank() == 0 && paths[i].second ? 1u : 0u};
        comm.broadcast(head, sizeof head, 0);
        path.resize(head[0]);
        comm.broadcast(path.data(), head[0], 0);
        if (comm.rank() != 0 && !path.empty()) regs.emplace_back(path, head[1] != 0);
    }
    return regs;
}

SampleRange rank_range(int64_t total, int rank, int ranks) {
    SampleRange r;
    if (total <= 0 || ranks <= 0) return r;
    const int64_t base = total / ranks, extra = total % ranks;
    r.first = rank * base + std::min<int64_t>(rank, extra);
    r.count = base + (rank < extra ? 1 : 0);
    return r;
}

}  // namespace rsa
