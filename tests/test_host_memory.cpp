// Host memory on the CPU path: the budget (physical memory less a margin, RSA_GPU_HOST_MEM_BYTES), checked
// allocations (OutOfMemoryError naming what and how large), and the CPU RDM planned against the budget: larger
// RDMs tiled to disk, RDMs that cannot be made refused with the sizes before any allocation.
#include "backend_calls.h"
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/npy.h"
#include "test_util.h"

using namespace rsa;

namespace {

// Sets RSA_GPU_HOST_MEM_BYTES for one scope (unset when v is null).
struct HostBudget {
    explicit HostBudget(const char* v) {
        if (v) setenv(kHostMemEnv, v, 1);
        else unsetenv(kHostMemEnv);
    }
    ~HostBudget() { unsetenv(kHostMemEnv); }
};

Matrix random_matrix(int64_t S, int64_t N) {
    Matrix m(S, N);
    m.data = rsa_test::random_uniform(static_cast<size_t>(S * N), -1.0f, 1.0f);
    return m;
}

// Peak resident memory of this process so far, bytes.
uint64_t peak_rss() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<uint64_t>(u.ru_maxrss) * 1024;
}

}  // namespace

TEST(HostMemory, BudgetFromPhysicalMemoryOrOverride) {
    {
        HostBudget b(nullptr);
        const uint64_t phys = host_physical_bytes();
        ASSERT_GT(phys, 0u);
        const uint64_t budget = host_memory_budget();
        EXPECT_LT(budget, phys);
        EXPECT_GE(budget, phys - std::max<uint64_t>(512ull << 20, phys / 10));
        EXPECT_NE(host_budget_text().find("physical memory"), std::string::npos) << host_budget_text();
    }
    {
        HostBudget b("512M");
        EXPECT_EQ(host_memory_budget(), 512ull << 20);
        EXPECT_NE(host_budget_text().find(kHostMemEnv), std::string::npos) << host_budget_text();
    }
    {
        HostBudget b("1.5G");
        EXPECT_EQ(host_memory_budget(), 3ull << 29);
    }
    {
        HostBudget b("123456");
        EXPECT_EQ(host_memory_budget(), 123456u);
    }
    for (const char* bad : {"lots", "-5G", "12Q", "0"}) {
        HostBudget b(bad);
        try {
            host_memory_budget();
            FAIL() << bad;
        } catch (const InputError& e) {
            EXPECT_NE(std::string(e.what()).find(kHostMemEnv), std::string::npos) << e.what();
        }
    }
}

TEST(HostMemory, CheckedAllocationsNameWhatAndSize) {
    HostBudget b("64M");
    EXPECT_EQ(checked_alloc<float>(1000, "small").size(), 1000u);
    EXPECT_EQ(checked_alloc<double>(5, "filled", 2.5)[4], 2.5);
    try {
        checked_alloc<float>(100ull << 20, "the test buffer");  // 400 MiB > 64 MiB
        FAIL() << "expected OutOfMemoryError";
    } catch (const OutOfMemoryError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("the test buffer"), std::string::npos) << m;
        EXPECT_NE(m.find("419.4 MB"), std::string::npos) << m;
        EXPECT_NE(m.find("67.1 MB"), std::string::npos) << m;  // the budget
    }
    try {
        checked_matrix(100000, 100000, "the big matrix");  // 40 GB
        FAIL() << "expected OutOfMemoryError";
    } catch (const OutOfMemoryError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("the big matrix (100000 x 100000 float32)"), std::string::npos) << m;
        EXPECT_NE(m.find("40.00 GB"), std::string::npos) << m;
    }
    // An OutOfMemoryError is a RuntimeError (exit code 1).
    EXPECT_THROW(checked_matrix(1 << 20, 1 << 20, "x"), RuntimeError);
    try {
        checked_bytes(std::numeric_limits<uint64_t>::max() / 2, 8, "an overflowing size");
        FAIL() << "expected OutOfMemoryError";
    } catch (const OutOfMemoryError& e) {
        EXPECT_NE(std::string(e.what()).find("an overflowing size"), std::string::npos) << e.what();
    }
    std::vector<int> v(3, 1);
    checked_resize(v, 10, "resized");
    EXPECT_EQ(v.size(), 10u);
    EXPECT_EQ(v[2], 1);
    EXPECT_THROW(checked_resize(v, 1ull << 30, "resized"), OutOfMemoryError);
}

TEST(HostMemory, WithoutOverrideAnAbsurdRequestFailsCleanly) {
    HostBudget b(nullptr);
    // More than the machine has: a clear OutOfMemoryError, not std::bad_alloc or the OOM killer.
    const uint64_t n = host_physical_bytes();  // floats: 4x physical memory
    EXPECT_THROW(checked_alloc<float>(static_cast<size_t>(n), "four times the machine"), OutOfMemoryError);
}

TEST(HostMemory, RdmLargerThanTheBudgetIsRefusedBeforeAllocating) {
    // 80,000 x 2: the RDM is 25.6 GB. It used to print a tiled plan, then allocate S x S and die of bad_alloc.
    HostBudget b("16G");
    // Rows whose two values are at least 0.5 apart: far from the rounding-level test of degenerate rows.
    Matrix x = random_matrix(80000, 2);
    for (int64_t i = 0; i < x.rows; ++i) x.at(i, 1) = x.at(i, 0) + 0.5f + 0.5f * std::fabs(x.at(i, 1));
    auto cpu = make_cpu_backend();
    const uint64_t rss0 = peak_rss();
    const auto t0 = std::chrono::steady_clock::now();
    std::string plan;
    RdmOptions opt;
    opt.on_plan = [&plan](const std::string& p) { plan += p; };
    try {
        rsa_test::rdm_of(*cpu, x, opt, "big responses");
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("big responses"), std::string::npos) << m;
        EXPECT_NE(m.find("80000 x 80000 RDM needs 25.60 GB"), std::string::npos) << m;
        EXPECT_NE(m.find("17.18 GB"), std::string::npos) << m;  // the host budget it was planned against
        EXPECT_NE(m.find("rsa_gpu rdm"), std::string::npos) << m;
        EXPECT_NE(m.find("fewer stimuli"), std::string::npos) << m;
    }
    EXPECT_NE(plan.find("tiled"), std::string::npos) << plan;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
    EXPECT_LT(peak_rss() - rss0, 256ull << 20);  // nothing of the 25.6 GB was touched
}

TEST(HostMemory, RdmTiledToDiskWhenOverTheBudget) {
    // 3000 x 50: a 36 MB RDM. With a 90 MiB budget (less the plan's 64 MiB margin) neither the one-shot nor the
    // streamed plan fits: the CPU tiles it to disk as the GPU would, and it equals the in-memory RDM.
    const Matrix x = random_matrix(3000, 50);
    auto cpu = make_cpu_backend();
    const Matrix want = rsa_test::rdm_of(*cpu, x, RdmOptions{}, "x");
    HostBudget b("90M");
    const std::string dir = rsa_test::scratch_dir("host_tiled");
    RdmOptions opt;
    opt.output_path = dir + "/rdm.npy";
    std::string plan;
    opt.on_plan = [&plan](const std::string& p) { plan += p; };
    const Matrix m = rsa_test::rdm_of(*cpu, x, opt, "x");
    EXPECT_EQ(m.rows, 0);  // on disk
    EXPECT_NE(plan.find("tiled"), std::string::npos) << plan;
    EXPECT_NE(plan.find(kHostMemEnv), std::string::npos) << plan;
    const NpyArray got = npy_load(opt.output_path);
    ASSERT_EQ(got.shape, (std::vector<int64_t>{3000, 3000}));
    const std::vector<float> g(got.values.begin(), got.values.end());
    EXPECT_LT(rsa_test::rel_l2(g, want.data), 1e-5);
    // Without an output path (the main job keeps RDMs in memory): an InputError with the sizes.
    try {
        rsa_test::rdm_of(*cpu, x, RdmOptions{}, "V1 responses");
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        const std::string m2 = e.what();
        EXPECT_NE(m2.find("3000 x 3000 RDM needs 36.0 MB"), std::string::npos) << m2;
        EXPECT_NE(m2.find(kHostMemEnv), std::string::npos) << m2;
    }
    // A budget the input alone exhausts: an InputError saying so, not a RuntimeError.
    HostBudget tiny("1M");
    try {
        rsa_test::rdm_of(*cpu, x, opt, "x");
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("no memory plan fits"), std::string::npos) << e.what();
    }
}

TEST(HostMemory, PlanHostRdmBeforeAnyWork) {
    // What the main job can ask for every RDM before training anything: no data needed, only the shapes.
    HostBudget b("100M");
    RdmOptions opt;
    EXPECT_EQ(plan_host_rdm(181, 23589, opt, "V1").kind, PlanKind::OneShot);
    {
        // The input counts against the budget: with 300 MiB, a 181 x 180000 input (130 MB) leaves too little for
        // a one-shot z-scored copy (after plan_rdm's own 64 MiB margin), so its neurons are streamed in blocks.
        HostBudget b300("300M");
        EXPECT_EQ(plan_host_rdm(181, 100000, opt, "V1").kind, PlanKind::OneShot);
        EXPECT_EQ(plan_host_rdm(181, 180000, opt, "V1").kind, PlanKind::Streamed);
    }
    HostBudget b100("100M");
    try {
        plan_host_rdm(4000, 8, opt, "'pool' representation");
        FAIL() << "expected InputError";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("'pool' representation: its 4000 x 4000 RDM needs 64.0 MB"),
                  std::string::npos)
            << e.what();
    }
    opt.output_path = "unused.npy";  // nothing is written by planning
    EXPECT_EQ(plan_host_rdm(4000, 8, opt, "x").kind, PlanKind::Tiled);
    EXPECT_FALSE(rsa_test::file_exists("unused.npy"));
    EXPECT_THROW(plan_host_rdm(100, 30000000, opt, "x"), InputError);  // the input alone is over the budget
}
