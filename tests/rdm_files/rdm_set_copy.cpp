// Test-only program for tests/rdm_files/roundtrip_test.py: reads an RDM set with read_rdm_set and writes it with
// write_rdm_set (the format from the output's name), printing what it read as one JSON line on stdout (count,
// patterns, names, measure, descriptors). `rdm_set_copy IN` only reads. Exit 2 with the message for an InputError,
// 1 for any other failure.
#include <cstdio>
#include <exception>
#include <string>

#include "rsa_gpu/error.h"
#include "rsa_gpu/rdm_set.h"

int main(int argc, char** argv) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: rdm_set_copy IN [OUT]\n");
        return rsa::kExitUsage;
    }
    try {
        const rsa::RdmSet set = rsa::read_rdm_set(argv[1]);
        const nlohmann::json summary = {{"count", set.count},
                                        {"patterns", set.patterns},
                                        {"names", set.names},
                                        {"dissimilarity_measure", set.dissimilarity_measure},
                                        {"descriptors", set.descriptors},
                                        {"rdm_descriptors", set.rdm_descriptors},
                                        {"pattern_descriptors", set.pattern_descriptors}};
        std::printf("%s\n", summary.dump().c_str());
        if (argc == 3) rsa::write_rdm_set(argv[2], set, false);
        return rsa::kExitOk;
    } catch (const rsa::InputError& e) {
        std::fprintf(stderr, "rdm_set_copy: %s\n", e.what());
        return rsa::kExitUsage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rdm_set_copy: %s\n", e.what());
        return rsa::kExitRuntime;
    }
}
