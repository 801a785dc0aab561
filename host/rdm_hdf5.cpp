// rsatoolbox's HDF5 layout of an RDM set, read and written through the HDF5 C library (see rdm_hdf5.h). Every HDF5
// call goes through check()/check_id(), which turn a negative return into an InputError (reading) or RuntimeError
// (writing) naming the file, what was being done and HDF5's innermost message; HDF5's automatic error printing is
// switched off for the duration of each call into this module.
#include "rdm_hdf5.h"

#include <fcntl.h>
#if RSA_GPU_HAVE_HDF5
#include <hdf5.h>
#endif
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"
#include "rsa_gpu/interrupt.h"

namespace rsa::hdf5 {

namespace {

uint64_t file_size(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return 0;
    return static_cast<uint64_t>(st.st_size);
}

}  // namespace

bool has_signature(const std::string& path) {
    static const char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool found = false;
    const uint64_t size = file_size(path);
    for (uint64_t offset = 0; !found && offset + 8 <= size && offset <= (uint64_t{1} << 30);
         offset = offset ? offset * 2 : 512) {
        char buf[8];
        if (::pread(fd, buf, 8, static_cast<off_t>(offset)) == 8 && std::memcmp(buf, kSignature, 8) == 0) found = true;
    }
    ::close(fd);
    return found;
}

#if RSA_GPU_HAVE_HDF5

namespace {

// At most this many values in one descriptor, links in one group, and levels of nested groups (rsatoolbox's files
// hold a few descriptors of K or S values); more is refused as a hostile file.
constexpr uint64_t kMaxDescriptorValues = uint64_t{1} << 26;
constexpr hsize_t kMaxGroupLinks = 100000;
constexpr int kMaxDepth = 16;
// Deflate's (and any filter's we accept) largest expansion, as for npz members (npy.h: kDeflateMaxRatio).
constexpr uint64_t kMaxFilterRatio = 1032;
constexpr uint64_t kFilterSlackBytes = 1024;
// Values per block when writing the dissimilarities (8 MB of float64).
constexpr int64_t kWriteBlock = int64_t{1} << 20;

// Switches HDF5's automatic error printing off for its lifetime and restores what was there.
class QuietErrors {
public:
    QuietErrors() {
        H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    }
    ~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
    QuietErrors(const QuietErrors&) = delete;
    QuietErrors& operator=(const QuietErrors&) = delete;

private:
    H5E_auto2_t func_ = nullptr;
    void* data_ = nullptr;
};

herr_t innermost_message(unsigned, const H5E_error2_t* e, void* out) {
    if (e && e->desc && *e->desc) *static_cast<std::string*>(out) = e->desc;
    return 0;
}

// HDF5's innermost error description on the default stack (then cleared), or "".
std::string hdf5_message() {
    std::string msg;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, innermost_message, &msg);
    H5Eclear2(H5E_DEFAULT);
    return msg;
}

// Where errors go: the file, and whether it is being read (InputError) or written (RuntimeError).
struct Context {
    std::string path;
    bool reading = true;

    [[noreturn]] void fail(const std::string& what) const {
        if (reading) throw InputError(path + ": " + what);
        throw RuntimeError(path + ": " + what);
    }
    [[noreturn]] void fail_call(const std::string& what) const {
        const std::string msg = hdf5_message();
        fail((reading ? "cannot read " : "cannot write ") + what + (msg.empty() ? "" : " (HDF5: " + msg + ")"));
    }
    hid_t check_id(hid_t id, const std::string& what) const {
        if (id < 0) fail_call(what);
        return id;
    }
    herr_t check(herr_t rc, const std::string& what) const {
        if (rc < 0) fail_call(what);
        return rc;
    }
};

// An HDF5 identifier closed with its own close function.
class Handle {
public:
    Handle() = default;
    Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
    ~Handle() { reset(); }
    Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) {
            reset();
            id_ = o.id_;
            close_ = o.close_;
            o.id_ = -1;
        }
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    hid_t get() const { return id_; }
    operator hid_t() const { return id_; }
    // Closes now, checked (writing: a failed close may mean data not written).
    void close(const Context& ctx, const std::string& what) {
        const hid_t id = id_;
        id_ = -1;
        if (id >= 0) ctx.check(close_(id), what);
    }

private:
    void reset() noexcept {
        if (id_ >= 0) close_(id_);
        id_ = -1;
    }
    hid_t id_ = -1;
    herr_t (*close_)(hid_t) = nullptr;
};

Handle make(const Context& ctx, hid_t id, herr_t (*close)(hid_t), const std::string& what) {
    return Handle(ctx.check_id(id, what), close);
}

std::string shape_text(const std::vector<hsize_t>& dims) {
    std::string s = "(";
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    if (dims.size() == 1) s += ",";
    return s + ")";
}

// ------------------------------------------------------------------------------------------------ reading

struct Reader {
    Context ctx;
    Handle file;
    uint64_t bytes = 0;  // the file's real size

    // Dataspace of an object (dataset or attribute): class and dims; InputError for a rank above 32.
    struct Space {
        H5S_class_t kind = H5S_NO_CLASS;
        std::vector<hsize_t> dims;
        uint64_t count = 0;  // elements (1 for a scalar, 0 for a null space)
    };
    Space space_of(hid_t space_id, const std::string& what) const {
        Handle space(space_id, H5Sclose);
        ctx.check_id(space_id, "the dataspace of " + what);
        Space s;
        s.kind = H5Sget_simple_extent_type(space);
        if (s.kind == H5S_NO_CLASS) ctx.fail_call("the dataspace of " + what);
        if (s.kind == H5S_NULL) return s;
        const int rank = ctx.check(H5Sget_simple_extent_ndims(space), "the rank of " + what);
        s.dims.resize(static_cast<size_t>(rank));
        if (rank > 0) ctx.check(H5Sget_simple_extent_dims(space, s.dims.data(), nullptr), "the shape of " + what);
        s.count = 1;
        for (hsize_t d : s.dims) {
            if (d != 0 && s.count > std::numeric_limits<uint64_t>::max() / 4 / d)
                ctx.fail(what + " claims shape " + shape_text(s.dims) + ", more values than any file holds");
            s.count *= d;
        }
        return s;
    }

    // A dataset's values must be in the file: the bytes it stores (contiguous or compact: all of them, within the
    // file; chunked: enough for the shape at the largest expansion a filter can give) bound what its shape claims,
    // before anything is allocated.
    void check_stored(hid_t dset, uint64_t count, size_t item, const std::string& what) const {
        const uint64_t need = count * item;  // count <= 2^62 / 4 and item small: no overflow in practice
        if (item != 0 && need / item != count) ctx.fail(what + " claims more bytes than any file holds");
        const hsize_t stored = H5Dget_storage_size(dset);
        Handle dcpl = make(ctx, H5Dget_create_plist(dset), H5Pclose, "the creation properties of " + what);
        const H5D_layout_t layout = H5Pget_layout(dcpl);
        if (layout < 0) ctx.fail_call("the layout of " + what);
        const std::string claim = what + " claims " + std::to_string(count) + " values (" + std::to_string(need) +
                                  " bytes) but the file ";
        if (layout == H5D_CHUNKED) {
            if (stored > bytes) ctx.fail(claim + "(" + std::to_string(bytes) + " bytes) is smaller than its chunks");
            if (need > stored * kMaxFilterRatio + kFilterSlackBytes)
                ctx.fail(claim + "stores only " + std::to_string(stored) + " bytes of chunks for it");
            return;
        }
        if (stored < need) ctx.fail(claim + "stores only " + std::to_string(stored) + " bytes for it");
        if (layout == H5D_CONTIGUOUS && need > 0) {
            const haddr_t offset = H5Dget_offset(dset);
            if (offset == HADDR_UNDEF || offset > bytes || need > bytes - offset)
                ctx.fail(claim + "(" + std::to_string(bytes) + " bytes) does not hold them");
        }
    }

    // ---- values of descriptors (datasets and attributes) as JSON

    // One object's values (a dataset when is_attr is false, else an attribute) as JSON: strings, integers,
    // floats; a scalar as a value, a 1-D array as a list, a null space as null. Other types and ranks: a warning,
    // and `ok` false.
    nlohmann::json read_values(hid_t obj, bool is_attr, const std::string& what, bool& ok) const {
        ok = true;
        Handle type = make(ctx, is_attr ? H5Aget_type(obj) : H5Dget_type(obj), H5Tclose, "the type of " + what);
        const Space s = space_of(is_attr ? H5Aget_space(obj) : H5Dget_space(obj), what);
        if (s.kind == H5S_NULL) return nullptr;
        if (s.dims.size() > 1) {
            report_warning(ctx.path + ": " + what + " has shape " + shape_text(s.dims) +
                           "; only scalars and 1-D descriptors are read, it is left out");
            ok = false;
            return nullptr;
        }
        if (s.count > kMaxDescriptorValues)
            ctx.fail(what + " claims " + std::to_string(s.count) + " values, more than a descriptor may hold");
        const H5T_class_t cls = H5Tget_class(type);
        size_t item = H5Tget_size(type);
        if (cls == H5T_NO_CLASS || (item == 0 && cls != H5T_STRING)) ctx.fail_call("the type of " + what);
        const htri_t variable = cls == H5T_STRING ? H5Tis_variable_str(type) : 0;
        if (variable < 0) ctx.fail_call("the string type of " + what);
        const bool vlen_string = variable > 0;
        if (!is_attr) check_stored(obj, s.count, vlen_string ? 16 : item, what);
        else if (!vlen_string && H5Aget_storage_size(obj) < s.count * item)
            ctx.fail(what + " claims " + std::to_string(s.count) + " values but the file stores fewer");
        auto read = [&](hid_t mem, void* dst) {
            if (is_attr) ctx.check(H5Aread(obj, mem, dst), what);
            else ctx.check(H5Dread(obj, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst), what);
        };
        nlohmann::json list = nlohmann::json::array();
        if (cls == H5T_INTEGER) {
            const bool is_unsigned = H5Tget_sign(type) == H5T_SGN_NONE && item >= 8;
            if (is_unsigned) {
                auto v = checked_alloc<uint64_t>(s.count, ctx.path + ": " + what);
                read(H5T_NATIVE_UINT64, v.data());
                for (uint64_t x : v) list.push_back(x);
            } else {
                auto v = checked_alloc<int64_t>(s.count, ctx.path + ": " + what);
                read(H5T_NATIVE_INT64, v.data());
                for (int64_t x : v) list.push_back(x);
            }
        } else if (cls == H5T_FLOAT) {
            auto v = checked_alloc<double>(s.count, ctx.path + ": " + what);
            read(H5T_NATIVE_DOUBLE, v.data());
            for (double x : v) list.push_back(x);
        } else if (cls == H5T_STRING) {
            Handle mem = make(ctx, H5Tcopy(H5T_C_S1), H5Tclose, "a string type for " + what);
            const H5T_cset_t cset = H5Tget_cset(type);
            ctx.check(H5Tset_cset(mem, cset == H5T_CSET_ERROR ? H5T_CSET_ASCII : cset), "a string type for " + what);
            if (vlen_string) {
                ctx.check(H5Tset_size(mem, H5T_VARIABLE), "a string type for " + what);
                std::vector<char*> v(s.count, nullptr);
                read(mem, v.data());
                for (char* p : v) list.push_back(std::string(p ? p : ""));
                Handle space = make(ctx, is_attr ? H5Aget_space(obj) : H5Dget_space(obj), H5Sclose, what);
                ctx.check(H5Dvlen_reclaim(mem, space, H5P_DEFAULT, v.data()), "releasing the strings of " + what);
            } else {
                ctx.check(H5Tset_size(mem, item), "a string type for " + what);
                ctx.check(H5Tset_strpad(mem, H5T_STR_NULLPAD), "a string type for " + what);
                auto v = checked_alloc<char>(checked_bytes(s.count, item, what), ctx.path + ": " + what);
                read(mem, v.data());
                for (uint64_t i = 0; i < s.count; ++i) {
                    const char* p = v.data() + i * item;
                    list.push_back(std::string(p, strnlen(p, item)));
                }
            }
        } else {
            report_warning(ctx.path + ": " + what + " is of an HDF5 type class (" + std::to_string(cls) +
                           ") other than integer, float or string; it is left out");
            ok = false;
            return nullptr;
        }
        if (s.dims.empty()) return list.at(0);
        return list;
    }

    struct AttrNames {
        std::vector<std::string> names;
    };
    static herr_t collect_attr(hid_t, const char* name, const H5A_info_t*, void* out) {
        auto* names = static_cast<AttrNames*>(out);
        if (names->names.size() >= kMaxGroupLinks) return 1;  // stop: too many
        names->names.emplace_back(name);
        return 0;
    }

    std::vector<std::string> attribute_names(hid_t obj, const std::string& what) const {
        AttrNames names;
        hsize_t idx = 0;
        const herr_t rc = H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr, &names);
        ctx.check(rc, "the attributes of " + what);
        if (rc > 0) ctx.fail(what + " has more than " + std::to_string(kMaxGroupLinks) + " attributes");
        return names.names;
    }

    std::vector<std::string> link_names(hid_t group, const std::string& what) const {
        H5G_info_t info{};
        ctx.check(H5Gget_info(group, &info), "the contents of " + what);
        if (info.nlinks > kMaxGroupLinks)
            ctx.fail(what + " has " + std::to_string(info.nlinks) + " members, more than " +
                     std::to_string(kMaxGroupLinks));
        std::vector<std::string> names;
        for (hsize_t i = 0; i < info.nlinks; ++i) {
            const ssize_t n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
            if (n < 0) ctx.fail_call("a member name of " + what);
            std::string name(static_cast<size_t>(n) + 1, '\0');
            if (H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                                   H5P_DEFAULT) < 0)
                ctx.fail_call("a member name of " + what);
            name.resize(static_cast<size_t>(n));
            names.push_back(name);
        }
        return names;
    }

    // A group as a JSON object: its attributes, datasets and (recursively) subgroups, as rsatoolbox's
    // _read_group makes a dict of them.
    nlohmann::json read_group(hid_t group, const std::string& what, int depth) const {
        if (depth > kMaxDepth) ctx.fail(what + " nests groups deeper than " + std::to_string(kMaxDepth) + " levels");
        nlohmann::json out = nlohmann::json::object();
        for (const std::string& name : link_names(group, what)) {
            const std::string sub = what + "/" + name;
            Handle obj = make(ctx, H5Oopen(group, name.c_str(), H5P_DEFAULT), H5Oclose, sub);
            const H5I_type_t t = H5Iget_type(obj);
            if (t == H5I_BADID) ctx.fail_call("the kind of " + sub);
            if (t == H5I_GROUP) {
                out[name] = read_group(obj, sub, depth + 1);
            } else if (t == H5I_DATASET) {
                bool ok = true;
                nlohmann::json v = read_values(obj, false, "'" + sub + "'", ok);
                if (ok) out[name] = std::move(v);
            }
        }
        for (const std::string& name : attribute_names(group, what)) {
            const std::string sub = what + " attribute '" + name + "'";
            Handle attr = make(ctx, H5Aopen(group, name.c_str(), H5P_DEFAULT), H5Aclose, sub);
            bool ok = true;
            nlohmann::json v = read_values(attr, true, sub, ok);
            if (ok) out[name] = std::move(v);
        }
        return out;
    }

    bool exists(hid_t loc, const std::string& name) const {
        const htri_t e = H5Lexists(loc, name.c_str(), H5P_DEFAULT);
        if (e < 0) ctx.fail_call("the member '" + name + "'");
        return e > 0;
    }

    // rdm_descriptors / pattern_descriptors: name -> list of `n` values (rsatoolbox's dict_to_list: a group of
    // "0", "1", ... becomes a list; a scalar becomes a list of one).
    nlohmann::json read_descriptor_lists(const std::string& group_name, int64_t n, const std::string& per) const {
        nlohmann::json out = nlohmann::json::object();
        if (!exists(file, group_name)) return out;
        Handle group = make(ctx, H5Gopen2(file, group_name.c_str(), H5P_DEFAULT), H5Gclose, "group " + group_name);
        const nlohmann::json raw = read_group(group, group_name, 1);
        for (auto it = raw.begin(); it != raw.end(); ++it) {
            nlohmann::json list = nlohmann::json::array();
            if (it->is_object()) {
                for (size_t i = 0; i < it->size(); ++i) {
                    const std::string key = std::to_string(i);
                    if (!it->contains(key))
                        ctx.fail(group_name + "/" + it.key() + " is a group without the member '" + key +
                                 "' (rsatoolbox writes a list as members 0, 1, ...)");
                    list.push_back((*it)[key]);
                }
            } else if (it->is_array()) {
                list = *it;
            } else {
                list.push_back(*it);
            }
            if (static_cast<int64_t>(list.size()) != n)
                ctx.fail(group_name + " '" + it.key() + "' has " + std::to_string(list.size()) + " values for " +
                         std::to_string(n) + " " + per);
            out[it.key()] = std::move(list);
        }
        return out;
    }
};

// ------------------------------------------------------------------------------------------------ writing

struct Writer {
    Context ctx;

    Handle string_type(size_t size, bool variable) const {
        Handle t = make(ctx, H5Tcopy(H5T_C_S1), H5Tclose, "a string type");
        ctx.check(H5Tset_size(t, variable ? H5T_VARIABLE : std::max<size_t>(size, 1)), "a string type");
        ctx.check(H5Tset_cset(t, variable ? H5T_CSET_UTF8 : H5T_CSET_ASCII), "a string type");
        if (!variable) ctx.check(H5Tset_strpad(t, H5T_STR_NULLPAD), "a string type");
        return t;
    }

    // A scalar string attribute (variable-length UTF-8, as h5py writes a str attribute).
    void string_attr(hid_t loc, const std::string& name, const std::string& value) const {
        const std::string what = "attribute '" + name + "'";
        Handle type = string_type(0, true);
        Handle space = make(ctx, H5Screate(H5S_SCALAR), H5Sclose, what);
        Handle attr = make(ctx, H5Acreate2(loc, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose, what);
        const char* p = value.c_str();
        ctx.check(H5Awrite(attr, type, &p), what);
        attr.close(ctx, what);
    }

    // A dataset of `dims` (empty: scalar) holding `data` in memory type `mem`, stored as `file_type`.
    void dataset(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, hid_t file_type, hid_t mem,
                 const void* data) const {
        const std::string what = "dataset '" + name + "'";
        Handle space = make(ctx, dims.empty() ? H5Screate(H5S_SCALAR)
                                              : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                            H5Sclose, what);
        Handle dset = make(ctx, H5Dcreate2(loc, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                           H5Dclose, what);
        if (data) ctx.check(H5Dwrite(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), what);
        dset.close(ctx, what);
    }

    // h5py's Empty("f"): a float32 dataset with a null dataspace (rsatoolbox's None).
    void empty_dataset(hid_t loc, const std::string& name) const {
        const std::string what = "dataset '" + name + "'";
        Handle space = make(ctx, H5Screate(H5S_NULL), H5Sclose, what);
        Handle dset = make(ctx, H5Dcreate2(loc, name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                                           H5P_DEFAULT),
                           H5Dclose, what);
        dset.close(ctx, what);
    }

    static bool all_of(const nlohmann::json& list, bool (nlohmann::json::*is)() const noexcept) {
        return std::all_of(list.begin(), list.end(), [&](const nlohmann::json& v) { return (v.*is)(); });
    }

    // One value as rsatoolbox's _write_to_group writes it: a string as an attribute, a number as a scalar dataset,
    // null as an empty dataset, a list as a 1-D dataset (strings fixed-length bytes, integers int64, otherwise
    // float64) or, mixed, a group of "0", "1", ...; an object as a subgroup.
    void value(hid_t group, const std::string& name, const nlohmann::json& v) const {
        if (v.is_string()) {
            string_attr(group, name, v.get<std::string>());
        } else if (v.is_null()) {
            empty_dataset(group, name);
        } else if (v.is_boolean() || v.is_number_integer()) {
            const int64_t x = v.is_boolean() ? (v.get<bool>() ? 1 : 0) : v.get<int64_t>();
            dataset(group, name, {}, H5T_STD_I64LE, H5T_NATIVE_INT64, &x);
        } else if (v.is_number()) {
            const double x = v.get<double>();
            dataset(group, name, {}, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &x);
        } else if (v.is_object()) {
            Handle sub = make(ctx, H5Gcreate2(group, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                              "group '" + name + "'");
            for (auto it = v.begin(); it != v.end(); ++it) value(sub, it.key(), *it);
            sub.close(ctx, "group '" + name + "'");
        } else if (v.is_array()) {
            list(group, name, v);
        }
    }

    void list(hid_t group, const std::string& name, const nlohmann::json& v) const {
        const std::vector<hsize_t> dims{v.size()};
        if (!v.empty() && all_of(v, &nlohmann::json::is_string)) {
            size_t width = 1;
            for (const auto& s : v) width = std::max(width, s.get_ref<const std::string&>().size());
            std::vector<char> buf(v.size() * width, '\0');
            for (size_t i = 0; i < v.size(); ++i) {
                const std::string& s = v[i].get_ref<const std::string&>();
                std::memcpy(buf.data() + i * width, s.data(), s.size());
            }
            Handle type = string_type(width, false);
            dataset(group, name, dims, type, type, buf.data());
        } else if (!v.empty() && (all_of(v, &nlohmann::json::is_number_integer) ||
                                  all_of(v, &nlohmann::json::is_boolean))) {
            std::vector<int64_t> buf;
            for (const auto& x : v) buf.push_back(x.is_boolean() ? (x.get<bool>() ? 1 : 0) : x.get<int64_t>());
            dataset(group, name, dims, H5T_STD_I64LE, H5T_NATIVE_INT64, buf.data());
        } else if (all_of(v, &nlohmann::json::is_number)) {  // also the empty list (numpy: float64)
            std::vector<double> buf;
            for (const auto& x : v) buf.push_back(x.get<double>());
            dataset(group, name, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, buf.data());
        } else {
            Handle sub = make(ctx, H5Gcreate2(group, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                              "group '" + name + "'");
            for (size_t i = 0; i < v.size(); ++i) value(sub, std::to_string(i), v[i]);
            sub.close(ctx, "group '" + name + "'");
        }
    }

    void group(hid_t file, const std::string& name, const nlohmann::json& members) const {
        Handle g = make(ctx, H5Gcreate2(file, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                        "group '" + name + "'");
        for (auto it = members.begin(); it != members.end(); ++it) value(g, it.key(), *it);
        g.close(ctx, "group '" + name + "'");
    }
};

nlohmann::json with_index(nlohmann::json descriptors, int64_t n) {
    if (!descriptors.is_object()) descriptors = nlohmann::json::object();
    if (!descriptors.contains("index")) {
        nlohmann::json index = nlohmann::json::array();
        for (int64_t i = 0; i < n; ++i) index.push_back(i);
        descriptors["index"] = std::move(index);
    }
    return descriptors;
}

// ---------------------------------------------------------------- the library in a child process
// The HDF5 library trusts parts of a file it should not: a few in a thousand random byte flips of an rsatoolbox file
// (its global heap of variable-length strings, its metadata cache) crash it. So the file is read in a forked child
// that sends the RDM set back through a pipe: a crash there is an InputError naming the file, and the caller goes on.
// Protocol: one status byte (0 set, 1 InputError, 2 other error); for a set, the length of its JSON header (count,
// patterns, names, measure, descriptors) as 8 bytes, the header, then the K x P doubles; for an error, the length of
// the message as 8 bytes, then the message.
void write_all(int fd, const void* data, size_t bytes) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
        const ssize_t n = ::write(fd, p, bytes);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) ::_exit(3);  // the parent is gone
        p += n;
        bytes -= static_cast<size_t>(n);
    }
}

// Reads exactly `bytes`; false at an early end of the pipe.
bool read_all(int fd, void* data, size_t bytes) {
    char* p = static_cast<char*>(data);
    while (bytes > 0) {
        const ssize_t n = ::read(fd, p, bytes);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        bytes -= static_cast<size_t>(n);
    }
    return true;
}

[[noreturn]] void child_read(const std::string& path, int fd) {
    // Test hook (tests/test_rdm_set.cpp): the child crashes as the library would on a corrupt file.
    const char* crash = std::getenv("RSA_GPU_TEST_HDF5_CRASH");
    if (crash && *crash == '1') {
        std::signal(SIGSEGV, SIG_DFL);  // past any sanitizer's handler: the plain crash
        std::raise(SIGSEGV);
    }
    unsigned char status = 0;
    std::string text;
    RdmSet set;
    try {
        set = read_rdm_set_here(path);
        nlohmann::json head = {{"count", set.count},
                               {"patterns", set.patterns},
                               {"names", set.names},
                               {"measure", set.dissimilarity_measure},
                               {"descriptors", set.descriptors},
                               {"rdm_descriptors", set.rdm_descriptors},
                               {"pattern_descriptors", set.pattern_descriptors}};
        // Strings that are not UTF-8 (a corrupt or foreign file) keep their place, with U+FFFD for the bad bytes.
        text = head.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } catch (const InputError& e) {
        status = 1;
        text = e.what();
    } catch (const std::exception& e) {
        status = 2;
        text = e.what();
    }
    const uint64_t length = text.size();
    write_all(fd, &status, 1);
    write_all(fd, &length, sizeof length);
    write_all(fd, text.data(), text.size());
    if (status == 0) write_all(fd, set.upper.data(), set.upper.size() * sizeof(double));
    ::close(fd);
    ::_exit(0);
}

}  // namespace

RdmSet read_rdm_set(const std::string& path) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw RuntimeError(path + ": cannot make a pipe to read the HDF5 file: " + std::strerror(errno));
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int err = errno;
        ::close(fds[0]);
        ::close(fds[1]);
        throw RuntimeError(path + ": cannot start the process that reads the HDF5 file: " + std::strerror(err));
    }
    if (pid == 0) {
        ::close(fds[0]);
        ::setpgid(0, 0);  // its own group: a second interrupt kills it (interrupt.h)
        child_read(path, fds[1]);
    }
    ::close(fds[1]);
    set_interrupt_child(pid);
    unsigned char status = 255;
    uint64_t length = 0;
    std::string text;
    RdmSet set;
    bool complete = read_all(fds[0], &status, 1) && read_all(fds[0], &length, sizeof length) && length < (1ull << 32);
    if (complete) {
        text.resize(static_cast<size_t>(length));
        complete = read_all(fds[0], text.data(), text.size());
    }
    std::string error;
    if (complete && status == 0) {
        try {
            const nlohmann::json head = nlohmann::json::parse(text);
            set.count = head.at("count").get<int64_t>();
            set.patterns = head.at("patterns").get<int64_t>();
            set.names = head.at("names").get<std::vector<std::string>>();
            set.dissimilarity_measure = head.at("measure").get<std::string>();
            set.descriptors = head.at("descriptors");
            set.rdm_descriptors = head.at("rdm_descriptors");
            set.pattern_descriptors = head.at("pattern_descriptors");
            set.upper = checked_alloc<double>(static_cast<size_t>(set.count * set.pairs()), path + ": the dissimilarities");
            complete = read_all(fds[0], set.upper.data(), set.upper.size() * sizeof(double));
        } catch (const OutOfMemoryError&) {
            throw;
        } catch (const std::exception& e) {
            error = e.what();
            complete = false;
        }
    }
    ::close(fds[0]);
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {}
    set_interrupt_child(0);
    if (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) != SIGKILL)
        throw InputError(path + ": the HDF5 library crashed reading it (" + signal_name(WTERMSIG(wstatus)) +
                         "): the file is corrupt");
    check_interrupt("reading an RDM file");
    if (!complete)
        throw RuntimeError(path + ": the process reading the HDF5 file ended without its result" +
                           (error.empty() ? std::string() : " (" + error + ")"));
    if (status == 1) throw InputError(text);
    if (status != 0) throw RuntimeError(text);
    return set;
}

RdmSet read_rdm_set_here(const std::string& path) {
    QuietErrors quiet;
    Reader r;
    r.ctx = Context{path, true};
    r.bytes = file_size(path);
    Handle fapl = make(r.ctx, H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "file access properties");
    r.ctx.check(H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG), "file access properties");
    r.file = make(r.ctx, H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl), H5Fclose, "the file as HDF5");

    if (!r.exists(r.file, "dissimilarities")) {
        std::string found;
        for (const std::string& n : r.link_names(r.file, "the file")) found += (found.empty() ? "" : ", ") + n;
        r.ctx.fail("no dataset 'dissimilarities' (rsatoolbox's RDMs layout); the file holds: " +
                   (found.empty() ? std::string("nothing") : found));
    }
    Handle dset = make(r.ctx, H5Dopen2(r.file, "dissimilarities", H5P_DEFAULT), H5Dclose, "dataset 'dissimilarities'");
    Handle type = make(r.ctx, H5Dget_type(dset), H5Tclose, "the type of 'dissimilarities'");
    const H5T_class_t cls = H5Tget_class(type);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER)
        r.ctx.fail("dataset 'dissimilarities' has HDF5 type class " +
                   std::string(cls == H5T_STRING ? "string" : cls == H5T_COMPOUND ? "compound" : std::to_string(cls)) +
                   "; expected floating-point (or integer) values");
    const Reader::Space s = r.space_of(H5Dget_space(dset), "dataset 'dissimilarities'");
    if (s.kind == H5S_NULL || s.dims.empty() || s.dims.size() > 2)
        r.ctx.fail("dataset 'dissimilarities' has shape " + (s.kind == H5S_NULL ? "None" : shape_text(s.dims)) +
                   "; expected (K, P) or (P,): K RDMs of P = S(S-1)/2 pairs");
    const uint64_t K = s.dims.size() == 2 ? s.dims[0] : 1;
    const uint64_t P = s.dims.back();
    // S from P = S(S-1)/2, exactly, in integers.
    uint64_t S = static_cast<uint64_t>(std::llround((1.0 + std::sqrt(1.0 + 8.0 * static_cast<double>(P))) / 2.0));
    while (S > 1 && S * (S - 1) / 2 > P) --S;
    while ((S + 1) * S / 2 <= P) ++S;
    if (S * (S - 1) / 2 != P)
        r.ctx.fail("dataset 'dissimilarities' has shape " + shape_text(s.dims) + ": " + std::to_string(P) +
                   " pairs is not S(S-1)/2 for any number of patterns S");
    if (S < 3)
        r.ctx.fail("dataset 'dissimilarities' has shape " + shape_text(s.dims) + ": " + std::to_string(S) +
                   " patterns; an RDM needs at least 3");
    if (K == 0) r.ctx.fail("dataset 'dissimilarities' has shape " + shape_text(s.dims) + ": no RDMs");
    const size_t item = H5Tget_size(type);
    if (item == 0) r.ctx.fail_call("the item size of 'dissimilarities'");
    r.check_stored(dset, s.count, item, "dataset 'dissimilarities' of shape " + shape_text(s.dims));

    RdmSet set;
    set.count = static_cast<int64_t>(K);
    set.patterns = static_cast<int64_t>(S);
    set.upper = checked_alloc<double>(s.count, path + ": the dissimilarities");
    r.ctx.check(H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, set.upper.data()),
                "dataset 'dissimilarities'");
    check_interrupt("reading an RDM file");

    // dissimilarity_measure: a string attribute, or (None) an empty dataset.
    const htri_t measure_attr = H5Aexists(r.file, "dissimilarity_measure");
    if (measure_attr < 0) r.ctx.fail_call("attribute 'dissimilarity_measure'");
    if (measure_attr > 0) {
        Handle attr = make(r.ctx, H5Aopen(r.file, "dissimilarity_measure", H5P_DEFAULT), H5Aclose,
                           "attribute 'dissimilarity_measure'");
        bool ok = true;
        const nlohmann::json m = r.read_values(attr, true, "attribute 'dissimilarity_measure'", ok);
        if (m.is_string()) set.dissimilarity_measure = m.get<std::string>();
    } else if (r.exists(r.file, "dissimilarity_measure")) {
        Handle d = make(r.ctx, H5Dopen2(r.file, "dissimilarity_measure", H5P_DEFAULT), H5Dclose,
                        "dataset 'dissimilarity_measure'");
        bool ok = true;
        const nlohmann::json m = r.read_values(d, false, "dataset 'dissimilarity_measure'", ok);
        if (m.is_string()) set.dissimilarity_measure = m.get<std::string>();
    }
    if (r.exists(r.file, "descriptors")) {
        Handle g = make(r.ctx, H5Gopen2(r.file, "descriptors", H5P_DEFAULT), H5Gclose, "group 'descriptors'");
        set.descriptors = r.read_group(g, "descriptors", 1);
    }
    set.rdm_descriptors = r.read_descriptor_lists("rdm_descriptors", set.count, "RDMs");
    set.pattern_descriptors = r.read_descriptor_lists("pattern_descriptors", set.patterns, "patterns");
    if (set.rdm_descriptors.contains("name")) {
        for (const auto& v : set.rdm_descriptors["name"]) set.names.push_back(v.is_string() ? v.get<std::string>()
                                                                                            : v.dump());
    }
    r.file.close(r.ctx, "the file");
    return set;
}

void write_rdm_set(const std::string& path, const RdmSet& meta, const UpperValues& values) {
    QuietErrors quiet;
    Writer w;
    w.ctx = Context{path, false};
    const int64_t K = meta.count, P = meta.pairs();
    if (K < 1 || meta.patterns < 3) w.ctx.fail("an RDM set needs at least one RDM of at least 3 patterns");
    Handle file = make(w.ctx, H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT), H5Fclose,
                       "a new HDF5 file");
    w.string_attr(file, "rsatoolbox_version", kRsatoolboxLayoutVersion);
    if (meta.dissimilarity_measure.empty()) w.empty_dataset(file, "dissimilarity_measure");
    else w.string_attr(file, "dissimilarity_measure", meta.dissimilarity_measure);

    {  // dissimilarities: K x P float64, written in blocks of at most kWriteBlock values
        const std::string what = "dataset 'dissimilarities'";
        const hsize_t dims[2] = {static_cast<hsize_t>(K), static_cast<hsize_t>(P)};
        Handle space = make(w.ctx, H5Screate_simple(2, dims, nullptr), H5Sclose, what);
        Handle dset = make(w.ctx, H5Dcreate2(file, "dissimilarities", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT,
                                             H5P_DEFAULT),
                           H5Dclose, what);
        std::vector<double> block = checked_alloc<double>(static_cast<size_t>(std::min(P, kWriteBlock)),
                                                          path + ": a block of dissimilarities");
        for (int64_t k = 0; k < K; ++k) {
            for (int64_t first = 0; first < P; first += kWriteBlock) {
                const int64_t n = std::min(kWriteBlock, P - first);
                values(k, first, n, block.data());
                const hsize_t start[2] = {static_cast<hsize_t>(k), static_cast<hsize_t>(first)};
                const hsize_t count[2] = {1, static_cast<hsize_t>(n)};
                w.ctx.check(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr), what);
                const hsize_t mem_dims[1] = {static_cast<hsize_t>(n)};
                Handle mem = make(w.ctx, H5Screate_simple(1, mem_dims, nullptr), H5Sclose, what);
                w.ctx.check(H5Dwrite(dset, H5T_NATIVE_DOUBLE, mem, space, H5P_DEFAULT, block.data()), what);
                check_interrupt("writing an RDM file");
            }
        }
        dset.close(w.ctx, what);
    }
    w.group(file, "descriptors", meta.descriptors.is_object() ? meta.descriptors : nlohmann::json::object());
    nlohmann::json rdm_desc = with_index(meta.rdm_descriptors, K);
    if (!rdm_desc.contains("name") && static_cast<int64_t>(meta.names.size()) == K) rdm_desc["name"] = meta.names;
    w.group(file, "rdm_descriptors", rdm_desc);
    w.group(file, "pattern_descriptors", with_index(meta.pattern_descriptors, meta.patterns));
    w.ctx.check(H5Fflush(file, H5F_SCOPE_GLOBAL), "the file (flush)");
    file.close(w.ctx, "the file (close)");
}

#else  // built with -DRSA_GPU_HDF5=OFF

namespace {
[[noreturn]] void no_hdf5(const std::string& path) {
    throw InputError(path + ": an HDF5 RDM file, but this rsa_gpu was built without HDF5 (-DRSA_GPU_HDF5=OFF); "
                     "rebuild with the HDF5 C library (Debian libhdf5-dev) or use .npy / .npz");
}
}  // namespace

RdmSet read_rdm_set(const std::string& path) { no_hdf5(path); }
void write_rdm_set(const std::string& path, const RdmSet&, const UpperValues&) { no_hdf5(path); }

#endif  // RSA_GPU_HAVE_HDF5

}  // namespace rsa::hdf5
