// A set of K RDMs over the same S patterns (subjects, sessions or models), in rsatoolbox's vector form (each RDM's
// strict upper triangle, row by row: pairs (0,1), (0,2), ..., (S-2,S-1)), with names and rsatoolbox's descriptors.
// What `evaluate` reads for its data and models and what commands that write RDM sets write. Read from .npy (S x S
// or K x S x S), .npz (one S x S array per key, or K x S x S arrays) and rsatoolbox's HDF5 layout (RDMs.save(f,
// file_type='hdf5')); written to .npy (S x S when K = 1, else K x S x S) or HDF5 (.h5 / .hdf5). Every reading
// failure is an InputError (exit 2) naming the file, the key and the shape; writing is atomic (staging name, then
// rename).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rsa {

struct RdmSet {
    int64_t count = 0;      // K: the number of RDMs
    int64_t patterns = 0;   // S: the number of patterns (stimuli, conditions)
    // K x S(S-1)/2, row-major: RDM k's strict upper triangle in rsatoolbox's order. float64 as rsatoolbox keeps it.
    std::vector<double> upper;
    // K names: the npz key, the file's stem (one RDM) or stem[k] (several), or rsatoolbox's rdm_descriptors
    // 'name' when the file has one. Unique within a set.
    std::vector<std::string> names;
    std::string dissimilarity_measure;   // rsatoolbox's dissimilarity_measure ("" when unknown)
    nlohmann::json descriptors = nlohmann::json::object();          // rsatoolbox's descriptors (set-wide)
    nlohmann::json rdm_descriptors = nlohmann::json::object();      // name -> list of K values
    nlohmann::json pattern_descriptors = nlohmann::json::object();  // name -> list of S values

    int64_t pairs() const { return patterns * (patterns - 1) / 2; }
    const double* rdm(int64_t k) const { return upper.data() + k * pairs(); }
};

// Reads an RDM set, by the file's contents (.npy magic, zip, HDF5 signature) and not only its extension. Checks:
// square S x S matrices, S >= 3, symmetric (|a_ij - a_ji| <= 1e-5 * max(1, |a_ij|)), zero diagonal (within the same
// tolerance), no NaN or Inf; all members of one file the same S. InputError naming file, key and shape otherwise.
RdmSet read_rdm_set(const std::string& path);

// RDMs held in memory: an S x S or K x S x S row-major float64 array (`shape` is its shape), checked and put in vector
// form as read_rdm_set reads an .npy; `source` names the array in messages, `name` the RDMs (name[k] for several).
RdmSet rdm_set_from_array(const double* values, const std::vector<int64_t>& shape, const std::string& source,
                          const std::string& name);

// Writes an RDM set: HDF5 in rsatoolbox's layout when `path` ends in .h5 or .hdf5, otherwise .npy (float64, S x S
// for one RDM, K x S x S for several). Atomic; refuses to replace an existing file unless `overwrite`.
void write_rdm_set(const std::string& path, const RdmSet& set, bool overwrite);

// True when `path` ends in .h5 or .hdf5 (any case): the name asks for rsatoolbox's HDF5 layout.
bool is_hdf5_path(const std::string& path);

// One S x S float32 RDM (rows of `patterns` floats, in memory or memory-mapped) written as rsatoolbox's HDF5 layout
// without building an RdmSet: its strict upper triangle goes out in blocks of a few MB, so no copy of the RDM is
// made. rdm_descriptors {name: [name], index: [0]}, pattern_descriptors {index: 0..S-1}, the measure as given (e.g.
// "correlation"). Atomic like write_rdm_set; refuses an existing file unless `overwrite`.
void write_square_rdm_hdf5(const std::string& path, const float* rdm, int64_t patterns, const std::string& name,
                           const std::string& measure, bool overwrite);

// The same from an S x S float32 C-order .npy (the RDM engine's tiled output), memory-mapped read-only, so an RDM
// larger than memory goes into the HDF5 file in blocks. RuntimeError naming `npy_path` when it is not such a file.
void write_square_rdm_hdf5_from_npy(const std::string& path, const std::string& npy_path, const std::string& name,
                                    const std::string& measure, bool overwrite);

}  // namespace rsa
