// Internal to host/: rsatoolbox's HDF5 layout of an RDMs object (RDMs.save(f, file_type='hdf5'), rsatoolbox/io/hdf5.py)
// through the HDF5 C library, for host/rdm_set.cpp. The root holds the dataset `dissimilarities` (K x P float64,
// P = S(S-1)/2, each row an RDM's strict upper triangle), the attributes `dissimilarity_measure` (a string; an empty
// dataset when None) and `rsatoolbox_version`, and the groups `descriptors`, `rdm_descriptors` and
// `pattern_descriptors` (strings as attributes, numbers as scalar datasets, lists as 1-D datasets: strings as
// fixed-length bytes, numbers as int64 / float64; a list numpy cannot hold as one array as a group of "0", "1", ...).
// Every HDF5 call is checked (HDF5's own error printing is silenced; its innermost message is quoted): reading
// failures are InputErrors naming the file and the object, writing failures RuntimeErrors naming the file. Reading
// trusts no size in the file: a dataset's shape is checked against the bytes the file stores for it before anything
// is allocated. Built with -DRSA_GPU_HDF5=OFF, read_rdm_set and write_rdm_set throw an InputError saying so.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "rsa_gpu/rdm_set.h"

namespace rsa::hdf5 {

// True when the file starts with HDF5's signature (at offset 0 or a user block of 512, 1024, 2048, ... bytes).
bool has_signature(const std::string& path);

// Reads an RDM set in rsatoolbox's layout, in a forked child process (the HDF5 library crashes on some corrupt files:
// that is an InputError naming the file here, and the caller goes on): count, patterns, upper (as stored, not yet checked for NaN), the measure
// and the three descriptor groups; names from rdm_descriptors 'name' when there is one, else left empty. InputError
// naming the file and the object for anything that is not that layout: no `dissimilarities`, a type other than
// integer or floating point, a rank other than 1 or 2, P not S(S-1)/2 for an S >= 3, a shape larger than what the
// file stores, descriptors whose length is not K (rdm_descriptors) or S (pattern_descriptors).
RdmSet read_rdm_set(const std::string& path);
// The same in this process (the child's part of read_rdm_set).
RdmSet read_rdm_set_here(const std::string& path);

// Writes `meta` (everything but `upper`, which may be empty) with the dissimilarities taken from `values`: called
// with (k, first, n, dst) it fills dst[0..n) with RDM k's upper-triangle values first .. first + n - 1; the dataset
// is written in blocks of at most a few MB, so the caller never builds the K x P array. `path` is created (it must
// not exist; callers write a staging name and rename it). rdm_descriptors get 'name' (meta.names) and 'index'
// (0..K-1), pattern_descriptors 'index' (0..S-1), unless they hold those already. RuntimeError naming `path`.
using UpperValues = std::function<void(int64_t k, int64_t first, int64_t n, double* dst)>;
void write_rdm_set(const std::string& path, const RdmSet& meta, const UpperValues& values);

// The version written as `rsatoolbox_version` (rsatoolbox writes its own version there and never reads it back:
// the layout is that of rsatoolbox 0.3.x, which this names).
constexpr const char* kRsatoolboxLayoutVersion = "0.3.2";

}  // namespace rsa::hdf5
