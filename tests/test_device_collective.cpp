// make_device_collective (distributed.h) where no device collective can be made: a plain run, one rank, a CPU
// backend, and another rank's reason carried to this one (the ranks agree on null and on why). The NCCL path itself
// needs GPUs and a launcher; these checks run on any machine.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/distributed.h"

using namespace rsa;

namespace {

// A launched communicator seen from one rank, the other ranks scripted: allreduce_max takes in `others_max` (the
// largest value the other ranks contribute), a broadcast from another rank delivers `others_bytes` in turn.
class ScriptedComm final : public Comm {
public:
    ScriptedComm(int rank, int size) : rank_(rank), size_(size) {}
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    std::string name() const override { return "scripted"; }
    bool launched() const override { return true; }
    int local_rank() const override { return rank_; }
    int local_size() const override { return 1; }
    void barrier() override {}
    void broadcast(void* data, uint64_t bytes, int root) override {
        ++broadcasts;
        if (root == rank_) return;
        ASSERT_FALSE(others_bytes.empty()) << "unexpected broadcast from rank " << root;
        const std::string next = others_bytes.front();
        others_bytes.erase(others_bytes.begin());
        ASSERT_EQ(next.size(), bytes);
        std::memcpy(data, next.data(), bytes);
    }
    void allreduce_sum(double*, uint64_t) override {}
    void allreduce_max(int64_t* data, uint64_t count) override {
        ++reductions;
        for (uint64_t i = 0; i < count && i < others_max.size(); ++i) data[i] = std::max(data[i], others_max[i]);
    }
    void reduce_sum(double*, uint64_t, int) override {}
    void exchange_rows(const std::vector<RowTransfer>&, const std::vector<RowTransfer>&, int64_t,
                       const std::function<void(size_t)>&) override {
        std::abort();  // not used here
    }
    std::vector<double> gather(const std::vector<double>& mine, int) override { return mine; }
    std::vector<double> allgather(const std::vector<double>& mine) override { return mine; }
    [[noreturn]] void abort(int) override { std::abort(); }

    std::vector<int64_t> others_max;
    std::vector<std::string> others_bytes;
    int broadcasts = 0, reductions = 0;

private:
    int rank_, size_;
};

}  // namespace

TEST(DeviceCollective, PlainRunHasNone) {
    auto comm = make_single_comm();
    auto cpu = make_cpu_backend();
    std::string why;
    EXPECT_EQ(make_device_collective(*comm, *cpu, &why), nullptr);
    EXPECT_NE(why.find("not a distributed run"), std::string::npos) << why;
}

TEST(DeviceCollective, OneRankHasNone) {
    ScriptedComm comm(0, 1);
    auto cpu = make_cpu_backend();
    std::string why;
    EXPECT_EQ(make_device_collective(comm, *cpu, &why), nullptr);
    EXPECT_NE(why.find("one rank"), std::string::npos) << why;
    EXPECT_EQ(comm.reductions, 0);  // decided without a collective
}

TEST(DeviceCollective, CpuBackendHasNoneAndSaysWhy) {
    ScriptedComm comm(0, 2);
    auto cpu = make_cpu_backend();
    std::string why;
    EXPECT_EQ(make_device_collective(comm, *cpu, &why), nullptr);
    EXPECT_NE(why.find("rank 0: "), std::string::npos) << why;
    EXPECT_NE(why.find("not a GPU"), std::string::npos) << why;
    EXPECT_EQ(comm.reductions, 1);  // the ranks agreed on null
}

TEST(DeviceCollective, AnotherRanksReasonReachesThisRank) {
    // Rank 1 of 3; rank 0 has no collective (its flag is size - rank = 3) and broadcasts its reason.
    ScriptedComm comm(1, 3);
    comm.others_max = {3};
    const std::string reason = "the CUDA plugin was built without NCCL";
    const uint64_t length = reason.size();
    comm.others_bytes = {std::string(reinterpret_cast<const char*>(&length), sizeof(length)), reason};
    auto cpu = make_cpu_backend();
    std::string why;
    EXPECT_EQ(make_device_collective(comm, *cpu, &why), nullptr);
    EXPECT_EQ(why, "rank 0: " + reason);
    EXPECT_EQ(comm.broadcasts, 2);
}
