// The MPI communicator of a distributed run (distributed.h), built into the rsa_gpu binary only when CMake found MPI
// (RSA_GPU_MPI; OpenMPI from Debian's packages): an MpiSession initialises MPI when a launcher (mpirun,
// mpiexec, SLURM's srun) started the process and installs the communicator as world(); a plain run never touches
// MPI. Every MPI call is checked (statement, file, line and MPI's message; errors return instead of aborting).
#include "mpi_comm.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <sstream>

#include "rsa_gpu/error.h"

namespace rsa {

namespace {

[[noreturn]] void throw_mpi_error(int code, const char* statement, const char* file, int line) {
    char text[MPI_MAX_ERROR_STRING] = {0};
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) std::snprintf(text, sizeof text, "MPI error %d", code);
    std::ostringstream os;
    os << "MPI call failed: " << statement << " at " << file << ":" << line << ": " << text;
    throw RuntimeError(os.str());
}

#define MPI_CHECK(call)                                                           \
    do {                                                                          \
        const int mpi_check_code_ = (call);                                       \
        if (mpi_check_code_ != MPI_SUCCESS) throw_mpi_error(mpi_check_code_, #call, __FILE__, __LINE__); \
    } while (0)

// Pieces of at most this many elements per call (MPI counts are int).
constexpr uint64_t kPiece = uint64_t{1} << 30;

class MpiComm final : public Comm {
public:
    // serialized: MPI gave MPI_THREAD_SERIALIZED or more (the row exchange may run on a thread of its own).
    explicit MpiComm(bool serialized) : serialized_(serialized) {
        MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
        MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
        MPI_Comm node = MPI_COMM_NULL;
        MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
        MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
        MPI_CHECK(MPI_Comm_size(node, &local_size_));
        MPI_CHECK(MPI_Comm_free(&node));
        char version[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
        int length = 0;
        MPI_CHECK(MPI_Get_library_version(version, &length));
        std::string v(version, static_cast<size_t>(std::max(length, 0)));
        v = v.substr(0, v.find_first_of(",\n"));
        name_ = "MPI (" + v + ")";
    }
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    std::string name() const override { return name_; }
    bool launched() const override { return true; }
    int local_rank() const override { return local_rank_; }
    int local_size() const override { return local_size_; }
    void barrier() override { MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); }
    void broadcast(void* data, uint64_t bytes, int root) override {
        char* p = static_cast<char*>(data);
        for (uint64_t at = 0; at < bytes; at += kPiece)
            MPI_CHECK(MPI_Bcast(p + at, static_cast<int>(std::min(kPiece, bytes - at)), MPI_BYTE, root, MPI_COMM_WORLD));
    }
    void allreduce_sum(double* data, uint64_t count) override {
        for (uint64_t at = 0; at < count; at += kPiece)
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + at, static_cast<int>(std::min(kPiece, count - at)), MPI_DOUBLE,
                                    MPI_SUM, MPI_COMM_WORLD));
    }
    void allreduce_max(int64_t* data, uint64_t count) override {
        for (uint64_t at = 0; at < count; at += kPiece)
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + at, static_cast<int>(std::min(kPiece, count - at)),
                                    MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD));
    }
    void reduce_sum(double* data, uint64_t count, int root) override {
        for (uint64_t at = 0; at < count; at += kPiece) {
            const int n = static_cast<int>(std::min(kPiece, count - at));
            if (rank_ == root)
                MPI_CHECK(MPI_Reduce(MPI_IN_PLACE, data + at, n, MPI_DOUBLE, MPI_SUM, root, MPI_COMM_WORLD));
            else
                MPI_CHECK(MPI_Reduce(data + at, nullptr, n, MPI_DOUBLE, MPI_SUM, root, MPI_COMM_WORLD));
        }
    }
    void exchange_rows(const std::vector<RowTransfer>& sends, const std::vector<RowTransfer>& receives, int64_t cols,
                       const std::function<void(size_t)>& on_received) override {
        // One row as one MPI element (counts stay small); every transfer posted at once, pairs matched in order (MPI
        // does not let messages of one sender, tag and communicator overtake each other); receives reported as
        // they complete.
        MPI_Datatype row = MPI_DATATYPE_NULL;
        MPI_CHECK(MPI_Type_contiguous(static_cast<int>(cols), MPI_FLOAT, &row));
        struct TypeGuard {
            MPI_Datatype* t;
            ~TypeGuard() { MPI_Type_free(t); }
        } guard{&row};
        MPI_CHECK(MPI_Type_commit(&row));
        std::vector<MPI_Request> requests;
        std::vector<int64_t> receive_of;  // per request: the index of its receive, or -1 for a send
        for (size_t i = 0; i < receives.size(); ++i) {
            const RowTransfer& t = receives[i];
            if (t.peer == rank_) continue;
            if (t.rows > INT_MAX) throw RuntimeError("exchange_rows: more than 2^31 rows in one transfer");
            if (t.rows == 0) {
                if (on_received) on_received(i);
                continue;
            }
            requests.push_back(MPI_REQUEST_NULL);
            receive_of.push_back(static_cast<int64_t>(i));
            MPI_CHECK(MPI_Irecv(t.data, static_cast<int>(t.rows), row, t.peer, 7, MPI_COMM_WORLD, &requests.back()));
        }
        for (const auto& t : sends)
            if (t.peer != rank_ && t.rows > 0) {
                if (t.rows > INT_MAX) throw RuntimeError("exchange_rows: more than 2^31 rows in one transfer");
                requests.push_back(MPI_REQUEST_NULL);
                receive_of.push_back(-1);
                MPI_CHECK(MPI_Isend(t.data, static_cast<int>(t.rows), row, t.peer, 7, MPI_COMM_WORLD, &requests.back()));
            }
        copy_to_self(rank_, sends, receives, cols, on_received);
        for (size_t left = requests.size(); left > 0; --left) {
            int done = MPI_UNDEFINED;
            MPI_CHECK(MPI_Waitany(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUS_IGNORE));
            if (done == MPI_UNDEFINED) break;
            const int64_t i = receive_of[static_cast<size_t>(done)];
            if (i >= 0 && on_received) on_received(static_cast<size_t>(i));
        }
    }
    bool exchange_in_background() const override { return serialized_; }
    std::vector<double> gather(const std::vector<double>& mine, int root) override { return gather_to(mine, root, false); }
    std::vector<double> allgather(const std::vector<double>& mine) override { return gather_to(mine, 0, true); }
    [[noreturn]] void abort(int exit_code) override {
        MPI_Abort(MPI_COMM_WORLD, exit_code);
        std::_Exit(exit_code);
    }

private:
    // Counts first, then the values (in pieces of at most INT_MAX values per rank and call).
    std::vector<double> gather_to(const std::vector<double>& mine, int root, bool everyone) {
        int64_t n = static_cast<int64_t>(mine.size());
        std::vector<int64_t> counts(static_cast<size_t>(size_));
        MPI_CHECK(MPI_Allgather(&n, 1, MPI_INT64_T, counts.data(), 1, MPI_INT64_T, MPI_COMM_WORLD));
        int64_t total = 0;
        for (int64_t c : counts) {
            if (c > INT_MAX) throw RuntimeError("gather: more than 2^31 values from one rank");
            total += c;
        }
        std::vector<int> icounts(counts.begin(), counts.end()), offsets(static_cast<size_t>(size_));
        int64_t at = 0;
        for (int r = 0; r < size_; ++r) {
            if (at > INT_MAX) throw RuntimeError("gather: more than 2^31 values in all");
            offsets[static_cast<size_t>(r)] = static_cast<int>(at);
            at += counts[static_cast<size_t>(r)];
        }
        std::vector<double> all;
        if (everyone || rank_ == root) all.resize(static_cast<size_t>(total));
        if (everyone)
            MPI_CHECK(MPI_Allgatherv(mine.data(), static_cast<int>(n), MPI_DOUBLE, all.data(), icounts.data(),
                                     offsets.data(), MPI_DOUBLE, MPI_COMM_WORLD));
        else
            MPI_CHECK(MPI_Gatherv(mine.data(), static_cast<int>(n), MPI_DOUBLE, all.data(), icounts.data(),
                                  offsets.data(), MPI_DOUBLE, root, MPI_COMM_WORLD));
        return all;
    }

    bool serialized_ = false;
    int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
    std::string name_;
};

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
    if (launcher_rank() < 0) return;
    int provided = 0;
    // SERIALIZED: the row exchange of the distributed RDM runs on a thread of its own while the main thread computes
    // tiles and makes no MPI call; a library that gives less runs the exchange in the main thread (no overlap).
    const int code = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    if (code != MPI_SUCCESS) throw_mpi_error(code, "MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided)",
                                             __FILE__, __LINE__);
    started_ = true;
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    set_world(std::make_unique<MpiComm>(provided >= MPI_THREAD_SERIALIZED));
}

MpiSession::~MpiSession() {
    if (!started_) return;
    set_world(nullptr);
    MPI_Finalize();
}

}  // namespace rsa
