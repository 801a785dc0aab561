// .npy / .npz reading and writing (numpy's formats, see npy.h): a small parser for the Python-literal header,
// bodies read straight into float32 (large preads from the file or inflated chunks from libzip, converted and
// NaN/Inf-checked in one pass, Fortran order transposed in tiles) or widened to double for NpyArray callers, a
// zip directory reader that checks every declared size against the file before anything is allocated, npz
// members inflated on demand through libzip into bounded buffers (header first), and atomic writers (temporary
// file in the same folder written with one writev of header + data, fsync, then rename).
#include "rsa_gpu/npy.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <sstream>

#include "rsa_gpu/error.h"
#include "rsa_gpu/host_memory.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.cpp assumes a little-endian host"
#endif

namespace rsa {

int64_t NpyArray::count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

namespace {

const char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    if (shape.size() == 1) s += ",";
    return s + ")";
}

std::string bytes_text(uint64_t n) { return std::to_string(n) + (n == 1 ? " byte" : " bytes"); }

[[noreturn]] void out_of_memory(const std::string& what, uint64_t bytes) {
    throw OutOfMemoryError(what + ": cannot allocate " + bytes_text(bytes) + " of host memory");
}

std::string errno_text(int err) { return err == ENOENT ? "no such file" : std::strerror(err); }

// ---- Python-literal header -------------------------------------------------------------------------------

struct PyValue {
    enum Kind { Str, Bool, None, Int, Tuple, List } kind = None;
    std::string str;
    bool flag = false;
    int64_t integer = 0;
    std::vector<PyValue> items;
};

// Recursive-descent parser for the subset of Python literals numpy writes in .npy headers.
class HeaderParser {
public:
    HeaderParser(const std::string& text, const std::string& source) : text_(text), source_(source) {}

    std::map<std::string, PyValue> parse_dict() {
        std::map<std::string, PyValue> dict;
        expect('{');
        skip_space();
        while (peek() != '}') {
            PyValue key = parse_value(0);
            if (key.kind != PyValue::Str) fail("dictionary key is not a string");
            expect(':');
            PyValue value = parse_value(0);
            if (!dict.emplace(key.str, std::move(value)).second) fail("duplicate key '" + key.str + "'");
            skip_space();
            if (peek() == ',') {
                ++pos_;
                skip_space();
            } else if (peek() != '}') {
                fail("expected ',' or '}'");
            }
        }
        ++pos_;
        skip_space();
        if (pos_ != text_.size()) fail("unexpected text after the dictionary");
        return dict;
    }

    [[noreturn]] void fail(const std::string& why) const {
        throw InputError(source_ + ": corrupt .npy header: " + why + " (at offset " + std::to_string(pos_) +
                         " of \"" + printable(text_) + "\")");
    }

private:
    static std::string printable(const std::string& s) {
        std::string out;
        for (char c : s.substr(0, 160)) out += (c >= 32 && c < 127) ? c : '?';
        while (!out.empty() && (out.back() == ' ' || out.back() == '?')) out.pop_back();
        return out;
    }
    char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
    void skip_space() {
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
                                       text_[pos_] == '\r'))
            ++pos_;
    }
    void expect(char c) {
        skip_space();
        if (peek() != c) fail(std::string("expected '") + c + "'");
        ++pos_;
    }
    bool take_word(const char* word) {
        const size_t n = std::strlen(word);
        if (text_.compare(pos_, n, word) != 0) return false;
        pos_ += n;
        return true;
    }

    PyValue parse_value(int depth) {
        if (depth > 16) fail("nesting too deep");
        skip_space();
        PyValue v;
        const char c = peek();
        if (c == '\'' || c == '"') {
            ++pos_;
            v.kind = PyValue::Str;
            while (peek() != c) {
                if (pos_ >= text_.size()) fail("unterminated string");
                if (peek() == '\\') ++pos_;  // keep the escaped character as is
                if (pos_ >= text_.size()) fail("unterminated string");
                v.str += text_[pos_++];
            }
            ++pos_;
        } else if (c == '(' || c == '[') {
            const char close = c == '(' ? ')' : ']';
            v.kind = c == '(' ? PyValue::Tuple : PyValue::List;
            ++pos_;
            skip_space();
            while (peek() != close) {
                v.items.push_back(parse_value(depth + 1));
                skip_space();
                if (peek() == ',') {
                    ++pos_;
                    skip_space();
                } else if (peek() != close) {
                    fail(std::string("expected ',' or '") + close + "'");
                }
            }
            ++pos_;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            v.kind = PyValue::Int;
            const bool negative = c == '-';
            if (negative) ++pos_;
            if (!(peek() >= '0' && peek() <= '9')) fail("malformed integer");
            uint64_t magnitude = 0;
            while (peek() >= '0' && peek() <= '9') {
                const uint64_t digit = static_cast<uint64_t>(peek() - '0');
                if (magnitude > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - digit) / 10)
                    fail("integer too large");
                magnitude = magnitude * 10 + digit;
                ++pos_;
            }
            if (peek() == 'L' || peek() == 'l') ++pos_;  // Python 2 long suffix
            v.integer = negative ? -static_cast<int64_t>(magnitude) : static_cast<int64_t>(magnitude);
        } else if (take_word("True")) {
            v.kind = PyValue::Bool;
            v.flag = true;
        } else if (take_word("False")) {
            v.kind = PyValue::Bool;
            v.flag = false;
        } else if (take_word("None")) {
            v.kind = PyValue::None;
        } else {
            fail(pos_ >= text_.size() ? "unexpected end of header" : "unexpected character");
        }
        return v;
    }

    const std::string& text_;
    const std::string& source_;
    size_t pos_ = 0;
};

// ---- dtypes ----------------------------------------------------------------------------------------------

enum class Kind { Float, Int, UInt, Bool };
struct DType {
    Kind kind;
    int size;  // bytes per element
};

std::string dtype_name(char code, int size) {
    switch (code) {
        case 'f': return size == 2 ? "float16" : "float" + std::to_string(size * 8);
        case 'c': return "complex" + std::to_string(size * 8);
        case 'i': return "int" + std::to_string(size * 8);
        case 'u': return "uint" + std::to_string(size * 8);
        case 'b': return "bool";
        case 'O': return "object";
        case 'U': return "unicode string";
        case 'S': case 'a': return "byte string";
        case 'V': return "void/structured";
        case 'M': return "datetime64";
        case 'm': return "timedelta64";
        default: return "unknown";
    }
}

DType parse_descr(const std::string& descr, const std::string& source) {
    const std::string supported =
        "supported: float32 '<f4', float64 '<f8', int8..int64, uint8..uint64, bool '|b1' (little-endian)";
    const auto unsupported = [&](const std::string& what) -> InputError {
        return InputError(source + ": unsupported dtype '" + descr + "' (" + what + "); " + supported);
    };
    if (descr.size() < 2) throw unsupported("unrecognised");
    const char order = descr[0];
    const char code = descr[1];
    int size = 0;
    const std::string digits = descr.substr(2);
    if (!digits.empty() && digits.size() <= 2 && digits.find_first_not_of("0123456789") == std::string::npos)
        size = std::stoi(digits);
    if (order != '<' && order != '>' && order != '|' && order != '=') throw unsupported("unrecognised");
    const std::string name = dtype_name(code, size);
    if (code == 'O' || code == 'U' || code == 'S' || code == 'a' || code == 'V' || code == 'M' || code == 'm')
        throw unsupported(name);
    if (code == 'c') throw unsupported(name);
    if (code == 'f' && size == 2) throw unsupported("float16");
    Kind kind;
    bool size_ok = false;
    switch (code) {
        case 'f': kind = Kind::Float; size_ok = size == 4 || size == 8; break;
        case 'i': kind = Kind::Int; size_ok = size == 1 || size == 2 || size == 4 || size == 8; break;
        case 'u': kind = Kind::UInt; size_ok = size == 1 || size == 2 || size == 4 || size == 8; break;
        case 'b': kind = Kind::Bool; size_ok = size == 1; break;
        default: throw unsupported("unrecognised");
    }
    if (!size_ok) throw unsupported(name == "unknown" ? "unrecognised" : name);
    if (size > 1 && order == '>') throw unsupported("big-endian " + name + "; convert with arr.astype('<" +
                                                    std::string(1, code) + std::to_string(size) + "')");
    if (size > 1 && order == '|') throw unsupported("no byte order for a multi-byte type");
    return DType{kind, size};
}

template <typename T>
void convert(const char* src, int64_t n, double* dst) {
    for (int64_t i = 0; i < n; ++i) {
        T x;
        std::memcpy(&x, src + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
        dst[i] = static_cast<double>(x);
    }
}

void convert_any(DType t, const char* src, int64_t n, double* dst) {
    switch (t.kind) {
        case Kind::Float:
            if (t.size == 4) convert<float>(src, n, dst); else convert<double>(src, n, dst);
            return;
        case Kind::Int:
            switch (t.size) {
                case 1: convert<int8_t>(src, n, dst); return;
                case 2: convert<int16_t>(src, n, dst); return;
                case 4: convert<int32_t>(src, n, dst); return;
                default: convert<int64_t>(src, n, dst); return;
            }
        case Kind::UInt:
            switch (t.size) {
                case 1: convert<uint8_t>(src, n, dst); return;
                case 2: convert<uint16_t>(src, n, dst); return;
                case 4: convert<uint32_t>(src, n, dst); return;
                default: convert<uint64_t>(src, n, dst); return;
            }
        case Kind::Bool:
            for (int64_t i = 0; i < n; ++i) dst[i] = src[i] != 0 ? 1.0 : 0.0;
            return;
    }
}

// Values read in Fortran order -> C order.
std::vector<double> fortran_to_c(const std::vector<double>& f, const std::vector<int64_t>& shape) {
    const size_t nd = shape.size();
    std::vector<double> c(f.size());
    if (f.empty()) return c;
    std::vector<int64_t> fstride(nd, 1), index(nd, 0);
    for (size_t k = 1; k < nd; ++k) fstride[k] = fstride[k - 1] * shape[k - 1];
    int64_t offset = 0;
    for (size_t i = 0; i < c.size(); ++i) {
        c[i] = f[static_cast<size_t>(offset)];
        for (size_t k = nd; k-- > 0;) {  // odometer over the C-order index, last axis fastest
            if (++index[k] < shape[k]) {
                offset += fstride[k];
                break;
            }
            offset -= fstride[k] * (shape[k] - 1);
            index[k] = 0;
        }
    }
    return c;
}

uint64_t read_le(const char* p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

// ---- files -----------------------------------------------------------------------------------------------

// The whole of an open file: a regular file into one buffer of its size, anything else (a pipe) into a buffer that
// grows as the data comes. InputError naming path when a read fails.
std::vector<char> read_all(int fd, const std::string& path) {
    struct stat st;
    const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    std::vector<char> bytes;
    size_t done = 0;
    size_t want = regular ? static_cast<size_t>(st.st_size) + 1 : size_t{1} << 16;  // + 1: the end is seen
    try {
        bytes.resize(want);
        for (;;) {
            if (done == bytes.size()) bytes.resize(want = 2 * bytes.size());
            const ssize_t r = ::read(fd, bytes.data() + done, bytes.size() - done);
            if (r < 0) {
                if (errno == EINTR) continue;
                throw InputError(path + ": cannot read: " + std::strerror(errno));
            }
            if (r == 0) break;
            done += static_cast<size_t>(r);
        }
    } catch (const std::bad_alloc&) {
        out_of_memory(path + ": reading the file", want);
    }
    bytes.resize(done);
    return bytes;
}

std::vector<char> read_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw InputError(path + ": " + errno_text(errno));
    try {
        std::vector<char> bytes = read_all(fd, path);
        ::close(fd);
        return bytes;
    } catch (...) {
        ::close(fd);
        throw;
    }
}

std::string temp_name(const std::string& path) {
    static std::atomic<unsigned> counter{0};
    return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

[[noreturn]] void write_failed(const std::string& path, const std::string& tmp, const std::string& why) {
    std::remove(tmp.c_str());
    throw RuntimeError(path + ": cannot write: " + why);
}

void rename_into_place(const std::string& tmp, const std::string& path) {
    if (std::rename(tmp.c_str(), path.c_str()) != 0) write_failed(path, tmp, std::strerror(errno));
}

// Writes the parts, in order, to a temporary file beside path with writev (no copy of the caller's data), fsyncs it
// and renames it into place; RuntimeError naming path (the temporary removed) when any step fails.
void write_atomic(const std::string& path, std::vector<iovec> parts) {
    const std::string tmp = temp_name(path);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        const int err = errno;
        write_failed(path, tmp, std::strerror(err));
    }
    int err = 0;
    size_t first = 0;  // the first part not yet written completely
    while (!err) {
        while (first < parts.size() && parts[first].iov_len == 0) ++first;
        if (first == parts.size()) break;
        const int n = static_cast<int>(std::min<size_t>(parts.size() - first, IOV_MAX));
        const ssize_t wrote = ::writev(fd, parts.data() + first, n);
        if (wrote < 0) {
            if (errno != EINTR) err = errno;
            continue;
        }
        if (wrote == 0) {
            err = EIO;
            continue;
        }
        size_t left = static_cast<size_t>(wrote);  // advance past what went out (writev may stop short)
        for (; left > 0 && first < parts.size(); ++first) {
            iovec& v = parts[first];
            if (left < v.iov_len) {
                v.iov_base = static_cast<char*>(v.iov_base) + left;
                v.iov_len -= left;
                left = 0;
                break;
            }
            left -= v.iov_len;
        }
    }
    if (!err && ::fsync(fd) != 0) err = errno;
    if (::close(fd) != 0 && !err) err = errno;
    if (err) write_failed(path, tmp, std::strerror(err));
    rename_into_place(tmp, path);
}

void write_atomic(const std::string& path, const char* data, size_t size) {
    write_atomic(path, {iovec{const_cast<char*>(data), size}});
}

int64_t checked_count(const std::vector<int64_t>& shape, const std::string& what) {
    int64_t n = 1;
    for (int64_t d : shape) {
        if (d < 0) throw RuntimeError(what + ": negative dimension in shape " + shape_text(shape));
        if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
            throw RuntimeError(what + ": shape " + shape_text(shape) + " is too large");
        n *= d;
    }
    return n;
}

// The .npy preamble and header of a C-order array: padded with spaces and a final newline so that the data
// starts at a multiple of 64 bytes, as numpy does.
std::string npy_header(const char* descr, const std::vector<int64_t>& shape) {
    checked_count(shape, "npy");
    std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " +
                         shape_text(shape) + ", }";
    const size_t preamble = kMagicLen + 2 + 2;
    const size_t total = (preamble + header.size() + 1 + 63) / 64 * 64;
    header.append(total - preamble - header.size() - 1, ' ');
    header += '\n';
    std::string out(kMagic, kMagicLen);
    out.push_back(1);
    out.push_back(0);
    out.push_back(static_cast<char>(header.size() & 0xff));
    out.push_back(static_cast<char>((header.size() >> 8) & 0xff));
    return out + header;
}

std::vector<char> npy_bytes(const char* descr, size_t item, const void* data, const std::vector<int64_t>& shape) {
    const int64_t n = checked_count(shape, "npy");
    const std::string header = npy_header(descr, shape);
    std::vector<char> out;
    out.reserve(header.size() + static_cast<size_t>(n) * item);
    out.insert(out.end(), header.begin(), header.end());
    const char* bytes = static_cast<const char*>(data);
    if (n > 0) out.insert(out.end(), bytes, bytes + static_cast<size_t>(n) * item);
    return out;
}

// Header and data written straight from the caller's array (one writev, no image in memory).
void npy_write(const std::string& path, const char* descr, size_t item, const void* data,
               const std::vector<int64_t>& shape) {
    const int64_t n = checked_count(shape, path);
    std::string header = npy_header(descr, shape);
    write_atomic(path, {iovec{header.data(), header.size()},
                        iovec{const_cast<void*>(data), n > 0 ? static_cast<size_t>(n) * item : 0}});
}

std::string zip_error_text(int code) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    std::string s = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    return s;
}

bool is_npy_member(const std::string& name) {
    return name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0;
}

// ---- .npy header (shared by whole images and npz members read header first) -----------------------------

struct Preamble {
    size_t size = 0;          // magic + version + length field
    uint64_t header_len = 0;  // the header text that follows
};

// Magic string, version and header length from the first n bytes of an image.
Preamble read_preamble(const char* p, size_t n, const std::string& source) {
    if (n < kMagicLen + 2 || std::memcmp(p, kMagic, kMagicLen) != 0)
        throw InputError(source + ": not an .npy file (bad magic string)");
    const int major = static_cast<unsigned char>(p[6]);
    const int minor = static_cast<unsigned char>(p[7]);
    size_t len_bytes;
    if (major == 1) len_bytes = 2;
    else if (major == 2 || major == 3) len_bytes = 4;
    else
        throw InputError(source + ": unsupported .npy format version " + std::to_string(major) + "." +
                         std::to_string(minor));
    Preamble pre;
    pre.size = 8 + len_bytes;
    if (n < pre.size) throw InputError(source + ": truncated: the .npy header is incomplete");
    pre.header_len = read_le(p + 8, static_cast<int>(len_bytes));
    return pre;
}

struct ParsedHeader {
    NpyHeader header;
    DType type{Kind::Float, 4};
    bool huge = false;  // shape * itemsize does not fit in 64 bits (data_bytes is then meaningless)
};

// The header text at p + pre.size (all pre.header_len bytes present).
ParsedHeader parse_header_text(const char* p, const Preamble& pre, const std::string& source) {
    const std::string text(p + pre.size, static_cast<size_t>(pre.header_len));
    HeaderParser parser(text, source);
    const std::map<std::string, PyValue> dict = parser.parse_dict();
    for (const char* key : {"descr", "fortran_order", "shape"})
        if (!dict.count(key)) parser.fail(std::string("missing key '") + key + "'");
    if (dict.size() != 3) parser.fail("unexpected keys (expected descr, fortran_order, shape)");
    const PyValue& descr = dict.at("descr");
    const PyValue& fortran = dict.at("fortran_order");
    const PyValue& shape = dict.at("shape");
    if (descr.kind == PyValue::List)
        throw InputError(source + ": unsupported dtype (structured array); supported: float32, float64, "
                                  "int8..int64, uint8..uint64, bool");
    if (descr.kind != PyValue::Str) parser.fail("'descr' is not a string");
    if (fortran.kind != PyValue::Bool) parser.fail("'fortran_order' is not True or False");
    if (shape.kind != PyValue::Tuple) parser.fail("'shape' is not a tuple");

    ParsedHeader out;
    NpyHeader& h = out.header;
    h.descr = descr.str;
    h.fortran_order = fortran.flag;
    for (const PyValue& d : shape.items) {
        if (d.kind != PyValue::Int || d.integer < 0) parser.fail("'shape' holds a value that is not a size");
        h.shape.push_back(d.integer);
    }
    out.type = parse_descr(h.descr, source);
    h.header_bytes = pre.size + pre.header_len;
    // Element count, saturating: a product past 2^60 is reported as too large by the callers.
    uint64_t count = 1;
    for (int64_t d : h.shape) {
        const uint64_t ud = static_cast<uint64_t>(d);
        if (ud == 0) {
            count = 0;
            out.huge = false;
            break;
        }
        if (count > std::numeric_limits<uint64_t>::max() / 16 / ud) out.huge = true;
        else count *= ud;
    }
    h.data_bytes = out.huge ? std::numeric_limits<uint64_t>::max() : count * static_cast<uint64_t>(out.type.size);
    return out;
}

// npy_parse's checks of an image of `total` bytes: the header text it announces must be there ...
void check_header_fits(const Preamble& pre, uint64_t total, const std::string& source) {
    if (pre.header_len > total - pre.size)
        throw InputError(source + ": truncated: header of " + std::to_string(pre.header_len) + " bytes, found " +
                         std::to_string(total - pre.size));
}

// ... and so must the data its header declares (`available` bytes follow the header).
void check_data_fits(const ParsedHeader& ph, uint64_t available, const std::string& source) {
    const NpyHeader& h = ph.header;
    if (ph.huge)
        throw InputError(source + ": shape " + shape_text(h.shape) + " is too large for the data present (" +
                         std::to_string(available) + " bytes)");
    if (h.data_bytes > available)
        throw InputError(source + ": truncated: expected " + std::to_string(h.data_bytes) + " bytes of data, found " +
                         std::to_string(available));
}

// ---- bodies straight into float32 ------------------------------------------------------------------------
// The response matrices and RDMs: one destination vector of float32, filled in large chunks straight from the
// file or the inflater (float32) or through a one-chunk staging buffer (other dtypes, converted as they arrive),
// with the NaN/Inf scan on each chunk while it is in cache.

constexpr uint64_t kBodyChunk = uint64_t{4} << 20;  // bytes read, inflated or converted per step
constexpr uint64_t kNoIndex = std::numeric_limits<uint64_t>::max();

float checked_float(double x, const std::string& source, const std::string& where) {
    if (!std::isfinite(x)) {
        std::ostringstream os;
        os << source << ": non-finite value " << (std::isnan(x) ? "NaN" : (x > 0 ? "+Inf" : "-Inf")) << " at "
           << where << " (NaN/Inf are not allowed)";
        throw InputError(os.str());
    }
    const float f = static_cast<float>(x);
    if (!std::isfinite(f)) {
        std::ostringstream os;
        os << source << ": value " << x << " at " << where << " is outside the float32 range";
        throw InputError(os.str());
    }
    return f;
}

// npy_to_matrix's and npy_to_vector's shape rules.
void check_matrix_shape(const std::vector<int64_t>& shape, const std::string& source, const MatrixRules& rules) {
    if (shape.size() != 2)
        throw InputError(source + ": " +
                         (rules.not_2d.empty() ? "expected a 2-D array, got shape " + shape_text(shape) : rules.not_2d));
    if (rules.non_empty && (shape[0] == 0 || shape[1] == 0))
        throw InputError(source + ": array is empty (shape " + shape_text(shape) + ")");
}

void check_vector_shape(const std::vector<int64_t>& shape, const std::string& source) {
    const bool one_d = shape.size() == 1;
    const bool thin_2d = shape.size() == 2 && (shape[0] == 1 || shape[1] == 1);
    if (!one_d && !thin_2d)
        throw InputError(source + ": expected a 1-D array (or one row/column), got shape " + shape_text(shape));
    for (int64_t d : shape)
        if (d == 0) throw InputError(source + ": array is empty (shape " + shape_text(shape) + ")");
}

// Where a body's values go: `count` values in the file's order. A Fortran-order matrix with more than one row
// and column holds them column by column: read as they come, then transposed into C order.
struct BodyLayout {
    uint64_t count = 0;
    bool transposed = false;
    int64_t rows = 0, cols = 0;  // of the C-order result (a vector: 1 x count)

    uint64_t c_index(uint64_t file_index) const {
        if (!transposed) return file_index;
        const uint64_t r = static_cast<uint64_t>(rows);
        return (file_index % r) * static_cast<uint64_t>(cols) + file_index / r;
    }
};

BodyLayout matrix_layout(const ParsedHeader& ph) {
    BodyLayout l;
    l.count = ph.header.data_bytes / static_cast<uint64_t>(ph.type.size);
    l.rows = ph.header.shape[0];
    l.cols = ph.header.shape[1];
    l.transposed = ph.header.fortran_order && l.rows > 1 && l.cols > 1;
    return l;
}

BodyLayout vector_layout(const ParsedHeader& ph) {  // 1-D or one row / column: the same order either way
    BodyLayout l;
    l.count = ph.header.data_bytes / static_cast<uint64_t>(ph.type.size);
    l.rows = 1;
    l.cols = static_cast<int64_t>(l.count);
    return l;
}

// What an allocation failure names: the source and the array.
std::string values_text(const std::string& source, const NpyHeader& h, uint64_t count) {
    return source + ": " + std::to_string(count) + " float32 values of shape " + shape_text(h.shape);
}

// The largest magnitude bit pattern of n floats: at least 0x7f800000 exactly when one is NaN or Inf. A max
// reduction, which the compiler vectorises.
uint32_t max_magnitude_bits(const float* p, size_t n) {
    uint32_t m = 0;
    for (size_t i = 0; i < n; ++i) {
        uint32_t b;
        std::memcpy(&b, p + i, sizeof b);
        b &= 0x7fffffffu;
        m = b > m ? b : m;
    }
    return m;
}

template <typename T>
void to_float(const char* src, size_t n, float* dst) {
    for (size_t i = 0; i < n; ++i) {
        T x;
        std::memcpy(&x, src + i * sizeof(T), sizeof(T));
        dst[i] = static_cast<float>(static_cast<double>(x));  // through double: what npy_to_matrix(npy_load()) gave
    }
}

// n values of type t at src into float32 at dst, in one pass.
void convert_to_float(DType t, const char* src, size_t n, float* dst) {
    switch (t.kind) {
        case Kind::Float:
            if (t.size == 4) std::memcpy(dst, src, n * sizeof(float));
            else to_float<double>(src, n, dst);
            return;
        case Kind::Int:
            switch (t.size) {
                case 1: to_float<int8_t>(src, n, dst); return;
                case 2: to_float<int16_t>(src, n, dst); return;
                case 4: to_float<int32_t>(src, n, dst); return;
                default: to_float<int64_t>(src, n, dst); return;
            }
        case Kind::UInt:
            switch (t.size) {
                case 1: to_float<uint8_t>(src, n, dst); return;
                case 2: to_float<uint16_t>(src, n, dst); return;
                case 4: to_float<uint32_t>(src, n, dst); return;
                default: to_float<uint64_t>(src, n, dst); return;
            }
        case Kind::Bool:
            for (size_t i = 0; i < n; ++i) dst[i] = src[i] != 0 ? 1.0f : 0.0f;
            return;
    }
}

// The first value in C order that is NaN, Inf or beyond the float32 range, as read (the one npy_to_matrix names).
struct FirstBad {
    uint64_t index = kNoIndex;
    double value = 0.0;
    bool found() const { return index != kNoIndex; }
};

// After n values of a float dtype landed at dst (file positions first..first+n; their source bytes at src, the
// same bytes for float32 read in place): notes the first bad one in C order. Integers and bools are finite.
void check_chunk(DType t, const char* src, const float* dst, size_t n, uint64_t first, const BodyLayout& layout,
                 FirstBad& bad) {
    if (t.kind != Kind::Float || max_magnitude_bits(dst, n) < 0x7f800000u) return;
    for (size_t i = 0; i < n; ++i) {
        if (std::isfinite(dst[i])) continue;
        double x;
        if (t.size == 4) {
            float f;
            std::memcpy(&f, src + i * sizeof f, sizeof f);
            x = f;
        } else {
            std::memcpy(&x, src + i * sizeof x, sizeof x);
        }
        const uint64_t at = layout.c_index(first + i);
        if (at < bad.index) {
            bad.index = at;
            bad.value = x;
        }
        if (!layout.transposed) return;  // file order is C order: this one is the first
    }
}

// n floats (zeros) for a body, through the host budget like checked_alloc. A large vector's pages are mapped in
// one call (MADV_POPULATE_WRITE, Linux 5.14+; ignored where unsupported) before they are zeroed: faulting them
// in one 4 KiB page at a time costs more on the virtual development machine (434 MB allocated and read, medians
// of 9 in one process: 255 vs 315 ms; `rsa_gpu compare` of two 64 MB RDMs as a process: 0.22 vs 0.28 s).
// Transparent huge pages (MADV_HUGEPAGE, what numpy asks for) were faster inside one process (158 ms) but slower
// and erratic as whole processes (compare 0.18 to 0.71 s, median 0.56 s), so they are not asked for.
std::vector<float> alloc_floats(size_t n, const std::string& what) {
    const uint64_t bytes = checked_bytes(n, sizeof(float), what);
    check_host_alloc(bytes, what);
    std::vector<float> v;
    try {
        v.reserve(n);
        if (bytes >= (uint64_t{16} << 20)) {
            constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE, absent from older headers
            const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
            const uintptr_t begin = (reinterpret_cast<uintptr_t>(v.data()) + page - 1) / page * page;
            const uintptr_t end = reinterpret_cast<uintptr_t>(v.data() + n) / page * page;
            if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, kPopulateWrite);
        }
        v.resize(n);
    } catch (const std::bad_alloc&) {
        throw_host_oom(what, bytes, "the allocation failed");
    } catch (const std::length_error&) {
        throw_host_oom(what, bytes, "too large for this platform");
    }
    return v;
}

// Fills dst with exactly the next n bytes of a body, or throws an InputError naming the source.
using BodySource = std::function<void(char* dst, size_t n)>;

struct FloatBody {
    std::vector<float> values;  // layout.count values, file order
    FirstBad bad;               // noted only when checked
};

// A body of layout.count values of type t from `next`, into float32 in one pass: float32 lands in place, other
// dtypes through a staging buffer of one chunk. The destination starts at `initial` values (all of them when
// the size is known to be there) and grows with what arrives, never past count; `what` names it in an
// allocation failure.
FloatBody read_float_body(DType t, const BodyLayout& layout, const BodySource& next, uint64_t initial, bool check,
                          const std::string& what) {
    FloatBody body;
    const uint64_t item = static_cast<uint64_t>(t.size);
    const uint64_t step = kBodyChunk / item;  // values per chunk
    body.values = alloc_floats(static_cast<size_t>(std::min(initial, layout.count)), what);
    const bool in_place = t.kind == Kind::Float && t.size == 4;
    std::vector<char> stage;
    if (!in_place && layout.count > 0)
        stage = checked_alloc<char>(static_cast<size_t>(std::min(step, layout.count) * item), what + " (staging)");
    for (uint64_t at = 0; at < layout.count;) {
        const size_t n = static_cast<size_t>(std::min(step, layout.count - at));
        if (body.values.size() < at + n)
            checked_resize(body.values,
                           static_cast<size_t>(std::min(layout.count, std::max<uint64_t>(2 * body.values.size(), at + n))),
                           what);
        float* dst = body.values.data() + at;
        const char* src = stage.data();
        if (in_place) {
            next(reinterpret_cast<char*>(dst), n * sizeof(float));
            src = reinterpret_cast<const char*>(dst);
        } else {
            next(stage.data(), n * static_cast<size_t>(item));
            convert_to_float(t, stage.data(), n, dst);
        }
        if (check) check_chunk(t, src, dst, n, at, layout, body.bad);
        at += n;
    }
    return body;
}

// The body as a C-order matrix: InputError naming the first bad value (when checked), Fortran order transposed.
Matrix finish_matrix(FloatBody&& body, const BodyLayout& layout, const std::string& source, const NpyHeader& h) {
    if (body.bad.found()) {
        const uint64_t cols = static_cast<uint64_t>(layout.cols);
        checked_float(body.bad.value, source,  // throws: the value is NaN, Inf or beyond the float32 range
                      "row " + std::to_string(body.bad.index / cols) + ", column " +
                          std::to_string(body.bad.index % cols) + " (0-based)");
    }
    Matrix m;
    if (layout.transposed) {
        m = checked_matrix(layout.rows, layout.cols, values_text(source, h, layout.count) + " in C order");
        transpose_f32(body.values.data(), layout.cols, layout.rows, m.data.data());
    } else {
        m.data = std::move(body.values);
    }
    m.rows = layout.rows;
    m.cols = layout.cols;
    return m;
}

std::vector<float> finish_vector(FloatBody&& body, const std::string& source) {
    if (body.bad.found())
        checked_float(body.bad.value, source, "index " + std::to_string(body.bad.index) + " (0-based)");  // throws
    return std::move(body.values);
}

// ---- .npy files straight into float32 --------------------------------------------------------------------

struct FdCloser {
    int fd;
    ~FdCloser() {
        if (fd >= 0) ::close(fd);
    }
};

// Exactly n bytes at offset (the caller checked that the file holds them when it was opened).
void pread_exact(int fd, uint64_t offset, char* dst, size_t n, const std::string& path) {
    size_t done = 0;
    while (done < n) {
        const ssize_t r = ::pread(fd, dst + done, n - done, static_cast<off_t>(offset + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            throw InputError(path + ": cannot read: " + std::strerror(errno));
        }
        if (r == 0)
            throw InputError(path + ": truncated: the file ended at " + bytes_text(offset + done) +
                             " while being read (it shrank)");
        done += static_cast<size_t>(r);
    }
}

// An .npy file read for float32: `from_body(parsed header, body source)` once its header has passed npy_parse's
// checks against the file's real size (nothing is allocated before); a path that is not a regular file (a pipe)
// is read whole (from the same open file) and handed to from_array, as npy_load does.
template <class Result, class FromArray, class FromBody>
Result load_npy_floats(const std::string& path, FromArray from_array, FromBody from_body) {
    FdCloser file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (file.fd < 0) throw InputError(path + ": " + errno_text(errno));
    struct stat st;
    if (::fstat(file.fd, &st) != 0 || !S_ISREG(st.st_mode)) return from_array(npy_parse(read_all(file.fd, path), path));
    const uint64_t total = static_cast<uint64_t>(st.st_size);
    ::posix_fadvise(file.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    std::vector<char> head(static_cast<size_t>(std::min<uint64_t>(total, 4096)));
    pread_exact(file.fd, 0, head.data(), head.size(), path);
    const Preamble pre = read_preamble(head.data(), head.size(), path);
    check_header_fits(pre, total, path);
    const uint64_t header_bytes = pre.size + pre.header_len;
    if (header_bytes > head.size()) {  // a long header: at most the file's size (checked above)
        const size_t had = head.size();
        try {
            head.resize(static_cast<size_t>(header_bytes));
        } catch (const std::bad_alloc&) {
            out_of_memory(path + ": its .npy header", header_bytes);
        }
        pread_exact(file.fd, had, head.data() + had, head.size() - had, path);
    }
    const ParsedHeader ph = parse_header_text(head.data(), pre, path);
    check_data_fits(ph, total - header_bytes, path);
    uint64_t offset = header_bytes;
    const BodySource next = [&](char* dst, size_t n) {
        pread_exact(file.fd, offset, dst, n, path);
        offset += n;
    };
    return from_body(ph, next);
}

// ---- zip directory ---------------------------------------------------------------------------------------
// Read by hand (not through libzip) so that every size is checked against the file before libzip, or anything
// else, acts on it. libzip is then used only to inflate members, and its view is cross-checked with ours.

uint16_t le16(const char* p) { return static_cast<uint16_t>(read_le(p, 2)); }
uint32_t le32(const char* p) { return static_cast<uint32_t>(read_le(p, 4)); }
uint64_t le64(const char* p) { return read_le(p, 8); }

constexpr size_t kEocdSize = 22, kZip64LocatorSize = 20, kZip64EocdSize = 56, kCentralSize = 46, kLocalSize = 30;
constexpr uint32_t kMax32 = 0xFFFFFFFFu;
constexpr uint16_t kMax16 = 0xFFFFu;

struct ZipEntry {
    std::string name;
    uint16_t flags = 0;
    uint16_t method = 0;
    uint64_t comp_size = 0;
    uint64_t size = 0;
    uint64_t local_offset = 0;
    uint64_t data_offset = 0;
};

// A regular file read with pread at checked offsets.
class InputFile {
public:
    explicit InputFile(const std::string& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) throw InputError(path + ": " + errno_text(errno));
        struct stat st;
        if (::fstat(fd_, &st) != 0) {
            const int err = errno;
            ::close(fd_);
            throw InputError(path + ": " + std::strerror(err));
        }
        if (!S_ISREG(st.st_mode)) {
            ::close(fd_);
            throw InputError(path + ": not a regular file (an .npz must be a zip file)");
        }
        size_ = static_cast<uint64_t>(st.st_size);
    }
    ~InputFile() { ::close(fd_); }
    InputFile(const InputFile&) = delete;
    InputFile& operator=(const InputFile&) = delete;

    uint64_t size() const { return size_; }

    // n bytes at offset; callers check offset + n <= size() first.
    void read_at(uint64_t offset, size_t n, char* dst, const std::string& what) const {
        size_t done = 0;
        while (done < n) {
            const ssize_t r = ::pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
            if (r < 0) {
                if (errno == EINTR) continue;
                throw InputError(path_ + ": cannot read " + what + ": " + std::strerror(errno));
            }
            if (r == 0) throw InputError(path_ + ": " + what + " ends early (the file shrank while being read)");
            done += static_cast<size_t>(r);
        }
    }

private:
    std::string path_;
    int fd_ = -1;
    uint64_t size_ = 0;
};

std::string not_zip(const std::string& path) {
    return path + ": not a zip archive, or a truncated one (an .npz must be a complete zip)";
}

// The zip64 extended-information field of a central record: replaces each 32-bit field that holds its
// maximum, in the order size, compressed size, local header offset, disk.
void apply_zip64_extra(const char* extra, size_t len, ZipEntry& e, uint32_t& disk, const std::string& path) {
    size_t at = 0;
    while (at < len) {
        if (len - at < 4) throw InputError(path + ": member '" + e.name + "': its extra field is truncated");
        const uint16_t id = le16(extra + at), flen = le16(extra + at + 2);
        if (len - at - 4 < flen)
            throw InputError(path + ": member '" + e.name + "': its extra field (id " + std::to_string(id) +
                             ") runs past the record");
        if (id == 0x0001) {
            const char* q = extra + at + 4;
            size_t left = flen;
            const auto take = [&](uint64_t& field, const char* what) {
                if (left < 8)
                    throw InputError(path + ": member '" + e.name + "': its zip64 field lacks the " + what);
                field = le64(q);
                q += 8;
                left -= 8;
            };
            if (e.size == kMax32) take(e.size, "uncompressed size");
            if (e.comp_size == kMax32) take(e.comp_size, "compressed size");
            if (e.local_offset == kMax32) take(e.local_offset, "local header offset");
            if (disk == kMax16) {
                if (left < 4) throw InputError(path + ": member '" + e.name + "': its zip64 field lacks the disk");
                disk = le32(q);
            }
        }
        at += 4 + flen;
    }
}

// The whole directory: end record (zip64 when present), central records, and each member's local header, with
// every size and offset checked against the file. Throws InputError naming the file (and the member).
std::vector<ZipEntry> read_zip_directory(const InputFile& file, const std::string& path) {
    const uint64_t fsize = file.size();
    if (fsize < kEocdSize) throw InputError(not_zip(path));

    // End of central directory record: the last "PK\5\6" whose comment fits in the file.
    const size_t tail_len = static_cast<size_t>(std::min<uint64_t>(fsize, kEocdSize + 0xFFFF));
    std::vector<char> tail(tail_len);
    file.read_at(fsize - tail_len, tail_len, tail.data(), "the zip end record");
    uint64_t eocd = fsize;
    for (size_t i = tail_len - kEocdSize + 1; i-- > 0;) {
        if (std::memcmp(tail.data() + i, "PK\x05\x06", 4) != 0) continue;
        if (i + kEocdSize + le16(tail.data() + i + 20) <= tail_len) {
            eocd = fsize - tail_len + i;
            break;
        }
    }
    if (eocd == fsize) throw InputError(not_zip(path));
    const char* r = tail.data() + (eocd - (fsize - tail_len));
    uint64_t disk = le16(r + 4), cd_disk = le16(r + 6), n_disk = le16(r + 8), n_total = le16(r + 10);
    uint64_t cd_size = le32(r + 12), cd_offset = le32(r + 16);
    uint64_t cd_end = eocd;  // where the central directory must end

    // Zip64: a locator just before the end record points at the zip64 end record.
    if (eocd >= kZip64LocatorSize) {
        char loc[kZip64LocatorSize];
        file.read_at(eocd - kZip64LocatorSize, kZip64LocatorSize, loc, "the zip64 locator");
        if (std::memcmp(loc, "PK\x06\x07", 4) == 0) {
            const uint64_t z64 = le64(loc + 8);
            const uint64_t limit = eocd - kZip64LocatorSize;
            if (le32(loc + 4) != 0 || le32(loc + 16) > 1)
                throw InputError(path + ": multi-disk (split) zip archives are not supported");
            if (z64 > limit || limit - z64 < kZip64EocdSize)
                throw InputError(path + ": the zip64 end record's offset " + std::to_string(z64) +
                                 " lies outside the file's " + bytes_text(limit) + " before its locator");
            char rec[kZip64EocdSize];
            file.read_at(z64, kZip64EocdSize, rec, "the zip64 end record");
            if (std::memcmp(rec, "PK\x06\x06", 4) != 0)
                throw InputError(path + ": no zip64 end record at offset " + std::to_string(z64) +
                                 " (corrupt or truncated archive)");
            disk = le32(rec + 16);
            cd_disk = le32(rec + 20);
            n_disk = le64(rec + 24);
            n_total = le64(rec + 32);
            cd_size = le64(rec + 40);
            cd_offset = le64(rec + 48);
            cd_end = z64;
        }
    }
    if (disk != 0 || cd_disk != 0 || n_disk != n_total)
        throw InputError(path + ": multi-disk (split) zip archives are not supported");
    if (cd_offset > cd_end || cd_size != cd_end - cd_offset)
        throw InputError(path + ": the central directory (" + bytes_text(cd_size) + " at offset " +
                         std::to_string(cd_offset) + ") does not end where the end record begins (offset " +
                         std::to_string(cd_end) + "): the archive is truncated or corrupt");
    if (n_total > cd_size / kCentralSize)
        throw InputError(path + ": the end record declares " + std::to_string(n_total) +
                         " members, but the central directory's " + bytes_text(cd_size) + " hold at most " +
                         std::to_string(cd_size / kCentralSize) + ": the archive is truncated or corrupt");

    std::vector<char> cd(static_cast<size_t>(cd_size));  // at most the file's size, checked above
    file.read_at(cd_offset, cd.size(), cd.data(), "the central directory");
    std::vector<ZipEntry> entries;
    entries.reserve(static_cast<size_t>(n_total));
    std::map<std::string, size_t> seen;
    size_t pos = 0;
    for (uint64_t i = 0; i < n_total; ++i) {
        const std::string which = "member #" + std::to_string(i + 1);
        if (cd.size() - pos < kCentralSize || std::memcmp(cd.data() + pos, "PK\x01\x02", 4) != 0)
            throw InputError(path + ": the central directory is truncated or corrupt: no record for " + which +
                             " at offset " + std::to_string(cd_offset + pos));
        const char* c = cd.data() + pos;
        const size_t nlen = le16(c + 28), xlen = le16(c + 30), clen = le16(c + 32);
        if (cd.size() - pos - kCentralSize < nlen + xlen + clen)
            throw InputError(path + ": the central directory is truncated: the record of " + which +
                             " runs past its end");
        ZipEntry e;
        e.name.assign(c + kCentralSize, nlen);
        e.flags = le16(c + 8);
        e.method = le16(c + 10);
        e.comp_size = le32(c + 20);
        e.size = le32(c + 24);
        e.local_offset = le32(c + 42);
        uint32_t member_disk = le16(c + 34);
        const std::string m = path + ": member '" + e.name + "'";
        if (e.name.find('\0') != std::string::npos)
            throw InputError(path + ": " + which + " has a name holding a NUL byte");
        if (!seen.emplace(e.name, entries.size()).second) throw InputError(path + ": duplicate member '" + e.name + "'");
        apply_zip64_extra(c + kCentralSize + nlen, xlen, e, member_disk, path);
        pos += kCentralSize + nlen + xlen + clen;

        if (e.flags & 0x0001) throw InputError(m + " is encrypted; encrypted archives are not supported");
        if (member_disk != 0) throw InputError(path + ": multi-disk (split) zip archives are not supported");
        if (e.method != 0 && e.method != 8)
            throw InputError(m + " uses compression method " + std::to_string(e.method) +
                             "; only stored (0) and deflate (8) are supported");
        // Local header: inside the member area (everything before the central directory).
        if (e.local_offset > cd_offset || cd_offset - e.local_offset < kLocalSize)
            throw InputError(m + ": its local header offset " + std::to_string(e.local_offset) +
                             " lies past the member data, which ends at the central directory (offset " +
                             std::to_string(cd_offset) + ")");
        char lh[kLocalSize];
        file.read_at(e.local_offset, kLocalSize, lh, "the local header of '" + e.name + "'");
        if (std::memcmp(lh, "PK\x03\x04", 4) != 0)
            throw InputError(m + ": no local header at offset " + std::to_string(e.local_offset) +
                             " (corrupt archive)");
        const uint64_t header_end = e.local_offset + kLocalSize + le16(lh + 26) + le16(lh + 28);
        if (header_end > cd_offset)
            throw InputError(m + ": its local header runs into the central directory (truncated or corrupt)");
        e.data_offset = header_end;
        if (e.comp_size > cd_offset - e.data_offset)
            throw InputError(m + " claims " + bytes_text(e.comp_size) + " of data at offset " +
                             std::to_string(e.data_offset) + ", but the archive holds only " +
                             bytes_text(cd_offset - e.data_offset) +
                             " there before its central directory (a lying size, or a truncated file)");
        if (e.method == 0 && e.size != e.comp_size)
            throw InputError(m + " is stored (not compressed) but declares " + bytes_text(e.size) + " while holding " +
                             bytes_text(e.comp_size));
        if (e.method == 8 && e.size > kDeflateSlackBytes &&
            (e.size - kDeflateSlackBytes) / kDeflateMaxRatio > e.comp_size)
            throw InputError(m + " declares " + bytes_text(e.size) + " inflated from " + bytes_text(e.comp_size) +
                             " of deflate data, more than deflate can expand (at most " +
                             std::to_string(kDeflateMaxRatio) + ":1)");
        entries.push_back(std::move(e));
    }
    if (pos != cd.size())
        throw InputError(path + ": the central directory holds " + bytes_text(cd.size() - pos) +
                         " after its last record (corrupt archive)");
    // Members may not overlap (overlapping members make a small file inflate many times over).
    std::vector<const ZipEntry*> by_offset;
    for (const ZipEntry& e : entries) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const ZipEntry* a, const ZipEntry* b) { return a->local_offset < b->local_offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        const ZipEntry& a = *by_offset[i - 1];
        const ZipEntry& b = *by_offset[i];
        if (a.data_offset + a.comp_size > b.local_offset)
            throw InputError(path + ": members '" + a.name + "' and '" + b.name +
                             "' overlap in the file (corrupt or malicious archive)");
    }
    return entries;
}

struct ZipCloser {
    void operator()(zip_t* z) const { zip_discard(z); }
};
using ZipPtr = std::unique_ptr<zip_t, ZipCloser>;

ZipPtr open_npz(const std::string& path) {
    int code = 0;
    zip_t* z = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (!z) {
        if (code == ZIP_ER_NOENT) throw InputError(path + ": no such file");
        if (code == ZIP_ER_NOZIP) throw InputError(not_zip(path));
        if (code == ZIP_ER_EXISTS)
            throw InputError(path + ": duplicate member names (two names that are the same once decoded)");
        throw InputError(path + ": cannot open as .npz: " + zip_error_text(code));
    }
    return ZipPtr(z);
}

struct ZipFileCloser {
    void operator()(zip_file_t* f) const { zip_fclose(f); }
};
using ZipFilePtr = std::unique_ptr<zip_file_t, ZipFileCloser>;

}  // namespace

// ---- NpzReader -------------------------------------------------------------------------------------------

struct NpzReader::Impl {
    std::string path;
    std::vector<ZipEntry> entries;         // every member, archive order
    std::vector<NpzMember> members;        // the *.npy ones
    std::map<std::string, size_t> index;   // name -> position in entries
    ZipPtr zip;                            // opened on the first member read

    std::string member_text(const ZipEntry& e) const { return path + ": member '" + e.name + "'"; }
    std::string member_source(const ZipEntry& e) const { return path + ":" + e.name.substr(0, e.name.size() - 4); }

    size_t locate(const std::string& key) const {
        const std::string name = is_npy_member(key) ? key : key + ".npy";
        const auto it = index.find(name);
        if (it != index.end()) return it->second;
        std::string present;
        for (const NpzMember& m : members) present += (present.empty() ? "" : ", ") + m.key;
        throw InputError(path + ": no key '" + key + "'; keys present: " + (present.empty() ? "(none)" : present));
    }

    // libzip's handle, opened once, and its view of the member cross-checked with ours.
    ZipFilePtr open_stream(size_t i) {
        const ZipEntry& e = entries[i];
        if (!zip) {
            zip = open_npz(path);
            if (zip_get_num_entries(zip.get(), 0) != static_cast<zip_int64_t>(entries.size()))
                throw InputError(path + ": inconsistent zip directory (libzip counts " +
                                 std::to_string(zip_get_num_entries(zip.get(), 0)) + " members, the directory " +
                                 std::to_string(entries.size()) + ")");
        }
        const char* raw = zip_get_name(zip.get(), i, ZIP_FL_ENC_RAW);
        zip_stat_t st;
        zip_stat_init(&st);
        if (!raw || raw != e.name || zip_stat_index(zip.get(), i, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE) ||
            !(st.valid & ZIP_STAT_COMP_SIZE) || st.size != e.size || st.comp_size != e.comp_size)
            throw InputError(member_text(e) + ": inconsistent zip directory (libzip reads it differently)");
        zip_file_t* f = zip_fopen_index(zip.get(), i, 0);
        if (!f) throw InputError(member_text(e) + ": " + zip_strerror(zip.get()));
        return ZipFilePtr(f);
    }

    // Up to n bytes into dst; fewer only at the member's end. InputError on a read or inflate error.
    uint64_t read_some(zip_file_t* f, const ZipEntry& e, char* dst, uint64_t n) const {
        uint64_t done = 0;
        while (done < n) {
            const zip_int64_t got = zip_fread(f, dst + done, n - done);
            if (got < 0) throw InputError(member_text(e) + ": " + zip_file_strerror(f));
            if (got == 0) break;
            done += static_cast<uint64_t>(got);
        }
        return done;
    }

    [[noreturn]] void ends_early(const ZipEntry& e, uint64_t got) const {
        throw InputError(member_text(e) + " holds only " + bytes_text(got) + " of data, fewer than the " +
                         bytes_text(e.size) + " it declares (truncated or lying)");
    }

    // The member's .npy header, read from its first bytes into buf (which then holds exactly the header);
    // the size the member declares must be the header plus shape * itemsize.
    ParsedHeader read_header(zip_file_t* f, const ZipEntry& e, std::vector<char>& buf) const {
        const std::string source = member_source(e);
        const uint64_t first = std::min<uint64_t>(e.size, 12);
        buf.resize(static_cast<size_t>(first));
        uint64_t got = read_some(f, e, buf.data(), first);
        if (got < first) ends_early(e, got);
        const Preamble pre = read_preamble(buf.data(), buf.size(), source);
        if (pre.header_len > kNpyMaxHeaderBytes)
            throw InputError(source + ": .npy header of " + bytes_text(pre.header_len) + " is longer than the " +
                             bytes_text(kNpyMaxHeaderBytes) + " allowed");
        if (pre.header_len > e.size - pre.size)
            throw InputError(member_text(e) + " declares " + bytes_text(e.size) + ", too few for its .npy header of " +
                             bytes_text(pre.size + pre.header_len));
        const uint64_t header_bytes = pre.size + pre.header_len;
        buf.resize(static_cast<size_t>(header_bytes));
        got += read_some(f, e, buf.data() + got, header_bytes - got);
        if (got < header_bytes) ends_early(e, got);
        const ParsedHeader ph = parse_header_text(buf.data(), pre, source);
        const NpyHeader& h = ph.header;
        if (ph.huge || h.data_bytes > e.size - h.header_bytes || h.header_bytes + h.data_bytes != e.size)
            throw InputError(member_text(e) + " declares " + bytes_text(e.size) + ", but its .npy header (shape " +
                             shape_text(h.shape) + ", dtype '" + h.descr + "') needs " +
                             (ph.huge ? std::string("more than 2^64 bytes")
                                      : bytes_text(h.header_bytes) + " + " + bytes_text(h.data_bytes) + " = " +
                                            bytes_text(h.header_bytes + h.data_bytes)));
        return ph;
    }

    NpyHeader header(size_t i) {
        const ZipEntry& e = entries[i];
        ZipFilePtr f = open_stream(i);
        std::vector<char> buf;
        return read_header(f.get(), e, buf).header;
    }

    // At the member's end: one byte more is an error (data past the declared size); reaching the end checks the CRC.
    void finish(zip_file_t* f, const ZipEntry& e) const {
        char extra;
        const zip_int64_t more = zip_fread(f, &extra, 1);
        if (more < 0) throw InputError(member_text(e) + ": " + zip_file_strerror(f));
        if (more > 0)
            throw InputError(member_text(e) + " holds more data than the " + bytes_text(e.size) +
                             " it declares (a lying size, or a decompression bomb)");
    }

    // A member's body straight into float32: its header read and checked, `check_shape` run on it before the body
    // is inflated, then the body chunk by chunk into the destination, the member's end and CRC checked.
    template <class CheckShape, class Layout>
    FloatBody read_floats(size_t i, bool check, CheckShape check_shape, Layout layout_of, ParsedHeader& ph,
                          BodyLayout& layout) {
        const ZipEntry& e = entries[i];
        ZipFilePtr f = open_stream(i);
        std::vector<char> head;
        ph = read_header(f.get(), e, head);
        check_shape(ph.header.shape);
        layout = layout_of(ph);
        // Stored: the declared size lies in the file (validated), so all of it at once. Deflated: what a member
        // that compresses up to 8:1 needs, grown with what actually inflates (a bomb stops at its real size).
        const uint64_t item = static_cast<uint64_t>(ph.type.size);
        const uint64_t initial =
            e.method == 0 ? layout.count : std::max<uint64_t>(kBodyChunk, 8 * std::min(e.comp_size, e.size)) / item;
        uint64_t got = ph.header.header_bytes;
        const BodySource next = [&](char* dst, size_t n) {
            const uint64_t r = read_some(f.get(), e, dst, n);
            got += r;
            if (r < n) ends_early(e, got);
        };
        FloatBody body = read_float_body(ph.type, layout, next, initial, check,
                                         values_text(member_source(e), ph.header, layout.count));
        finish(f.get(), e);
        return body;
    }

    Matrix read_matrix(size_t i, const MatrixRules& rules) {
        const std::string source = member_source(entries[i]);
        ParsedHeader ph;
        BodyLayout layout;
        FloatBody body = read_floats(
            i, rules.finite, [&](const std::vector<int64_t>& shape) { check_matrix_shape(shape, source, rules); },
            matrix_layout, ph, layout);
        return finish_matrix(std::move(body), layout, source, ph.header);
    }

    std::vector<float> read_vector(size_t i) {
        const std::string source = member_source(entries[i]);
        ParsedHeader ph;
        BodyLayout layout;
        FloatBody body = read_floats(
            i, true, [&](const std::vector<int64_t>& shape) { check_vector_shape(shape, source); }, vector_layout,
            ph, layout);
        return finish_vector(std::move(body), source);
    }

    NpyArray read(size_t i, uint64_t max_bytes) {
        const ZipEntry& e = entries[i];
        if (e.size > max_bytes)
            throw InputError(member_text(e) + " declares " + bytes_text(e.size) + ", more than the " +
                             bytes_text(max_bytes) + " allowed for it here");
        ZipFilePtr f = open_stream(i);
        std::vector<char> buf;
        read_header(f.get(), e, buf);
        // The body, into a buffer that grows with what actually inflates, never past the declared size.
        uint64_t done = buf.size();
        while (done < e.size) {
            if (buf.size() == done) {
                const uint64_t grown = std::min<uint64_t>(e.size, std::max<uint64_t>(2 * done, done + (1u << 20)));
                try {
                    buf.resize(static_cast<size_t>(grown));
                } catch (const std::bad_alloc&) {
                    out_of_memory(member_text(e), grown);
                }
            }
            const uint64_t got = read_some(f.get(), e, buf.data() + done, buf.size() - done);
            done += got;
            if (done < buf.size()) ends_early(e, done);
        }
        finish(f.get(), e);
        f.reset();
        return npy_parse(buf, member_source(e));
    }
};

// ---- reading ---------------------------------------------------------------------------------------------

int64_t NpyHeader::count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

NpyArray npy_parse(const std::vector<char>& bytes, const std::string& source) {
    const Preamble pre = read_preamble(bytes.data(), bytes.size(), source);
    check_header_fits(pre, bytes.size(), source);
    const ParsedHeader ph = parse_header_text(bytes.data(), pre, source);
    const NpyHeader& h = ph.header;
    check_data_fits(ph, bytes.size() - h.header_bytes, source);
    const uint64_t count = h.data_bytes / static_cast<uint64_t>(ph.type.size);

    NpyArray a;
    a.descr = h.descr;
    a.shape = h.shape;
    std::vector<double> values;
    try {
        values.resize(static_cast<size_t>(count));
    } catch (const std::bad_alloc&) {
        out_of_memory(source + ": " + std::to_string(count) + " values of shape " + shape_text(h.shape),
                      count * sizeof(double));
    }
    convert_any(ph.type, bytes.data() + h.header_bytes, static_cast<int64_t>(count), values.data());
    if (h.fortran_order && a.shape.size() > 1) {
        try {
            a.values = fortran_to_c(values, a.shape);
        } catch (const std::bad_alloc&) {
            out_of_memory(source + ": reordering shape " + shape_text(h.shape) + " from Fortran order",
                          count * sizeof(double));
        }
    } else {
        a.values = std::move(values);
    }
    return a;
}

NpyHeader npy_parse_header(const char* bytes, size_t size, const std::string& source) {
    const Preamble pre = read_preamble(bytes, size, source);
    check_header_fits(pre, size, source);
    const ParsedHeader ph = parse_header_text(bytes, pre, source);
    if (ph.huge) throw InputError(source + ": shape " + shape_text(ph.header.shape) + " is too large");
    return ph.header;
}

NpyArray npy_load(const std::string& path) { return npy_parse(read_file(path), path); }

Matrix npy_load_matrix(const std::string& path, const MatrixRules& rules) {
    return load_npy_floats<Matrix>(
        path, [&](const NpyArray& a) { return npy_to_matrix(a, path, rules); },
        [&](const ParsedHeader& ph, const BodySource& next) {
            check_matrix_shape(ph.header.shape, path, rules);
            const BodyLayout layout = matrix_layout(ph);
            FloatBody body = read_float_body(ph.type, layout, next, layout.count, rules.finite,
                                             values_text(path, ph.header, layout.count));
            return finish_matrix(std::move(body), layout, path, ph.header);
        });
}

std::vector<float> npy_load_vector(const std::string& path) {
    return load_npy_floats<std::vector<float>>(
        path, [&](const NpyArray& a) { return npy_to_vector(a, path); },
        [&](const ParsedHeader& ph, const BodySource& next) {
            check_vector_shape(ph.header.shape, path);
            const BodyLayout layout = vector_layout(ph);
            FloatBody body =
                read_float_body(ph.type, layout, next, layout.count, true, values_text(path, ph.header, layout.count));
            return finish_vector(std::move(body), path);
        });
}

NpzReader::NpzReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
    impl_->path = path;
    try {
        const InputFile file(path);
        impl_->entries = read_zip_directory(file, path);
        for (size_t i = 0; i < impl_->entries.size(); ++i) {
            const ZipEntry& e = impl_->entries[i];
            impl_->index.emplace(e.name, i);
            if (!is_npy_member(e.name)) continue;  // folders and non-array files are not arrays
            NpzMember m;
            m.name = e.name;
            m.key = e.name.substr(0, e.name.size() - 4);
            m.deflated = e.method == 8;
            m.compressed_size = e.comp_size;
            m.size = e.size;
            impl_->members.push_back(std::move(m));
        }
    } catch (const std::bad_alloc&) {
        throw OutOfMemoryError(path + ": out of host memory while reading the zip directory");
    }
}

NpzReader::~NpzReader() = default;
NpzReader::NpzReader(NpzReader&&) noexcept = default;
NpzReader& NpzReader::operator=(NpzReader&&) noexcept = default;

const std::string& NpzReader::path() const { return impl_->path; }
const std::vector<NpzMember>& NpzReader::members() const { return impl_->members; }

std::vector<std::string> NpzReader::keys() const {
    std::vector<std::string> keys;
    for (const NpzMember& m : impl_->members) keys.push_back(m.key);
    return keys;
}

bool NpzReader::has(const std::string& key) const {
    return impl_->index.count(is_npy_member(key) ? key : key + ".npy") > 0;
}

NpyHeader NpzReader::header(const std::string& key) {
    const size_t i = impl_->locate(key);
    try {
        return impl_->header(i);
    } catch (const std::bad_alloc&) {
        throw OutOfMemoryError(impl_->member_text(impl_->entries[i]) + ": out of host memory reading its header");
    }
}

Matrix NpzReader::read_matrix(const std::string& key, const MatrixRules& rules) {
    const size_t i = impl_->locate(key);
    try {
        return impl_->read_matrix(i, rules);
    } catch (const std::bad_alloc&) {
        throw OutOfMemoryError(impl_->member_text(impl_->entries[i]) + ": out of host memory (it declares " +
                               bytes_text(impl_->entries[i].size) + ")");
    }
}

std::vector<float> NpzReader::read_vector(const std::string& key) {
    const size_t i = impl_->locate(key);
    try {
        return impl_->read_vector(i);
    } catch (const std::bad_alloc&) {
        throw OutOfMemoryError(impl_->member_text(impl_->entries[i]) + ": out of host memory (it declares " +
                               bytes_text(impl_->entries[i].size) + ")");
    }
}

NpyArray NpzReader::read(const std::string& key, uint64_t max_bytes) {
    const size_t i = impl_->locate(key);
    try {
        return impl_->read(i, max_bytes);
    } catch (const std::bad_alloc&) {
        throw OutOfMemoryError(impl_->member_text(impl_->entries[i]) + ": out of host memory (it declares " +
                               bytes_text(impl_->entries[i].size) + ")");
    }
}

std::map<std::string, NpyArray> npz_load(const std::string& path) {
    NpzReader npz(path);
    std::map<std::string, NpyArray> out;
    for (const NpzMember& m : npz.members()) out[m.key] = npz.read(m.name);
    return out;
}

std::vector<std::string> npz_keys(const std::string& path) { return NpzReader(path).keys(); }

NpyArray npz_load_key(const std::string& path, const std::string& key, uint64_t max_bytes) {
    return NpzReader(path).read(key, max_bytes);
}

// ---- writing ---------------------------------------------------------------------------------------------

std::vector<char> npy_bytes_f32(const float* data, const std::vector<int64_t>& shape) {
    return npy_bytes("<f4", sizeof(float), data, shape);
}

std::vector<char> npy_bytes_f64(const double* data, const std::vector<int64_t>& shape) {
    return npy_bytes("<f8", sizeof(double), data, shape);
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
    write_atomic(path, bytes.data(), bytes.size());
}

void npy_save(const std::string& path, const MatrixView& m) {
    if (m.rows < 0 || m.cols < 0 || (m.rows * m.cols > 0 && !m.ptr))
        throw RuntimeError(path + ": no matrix data for shape (" + std::to_string(m.rows) + ", " +
                           std::to_string(m.cols) + ")");
    npy_write(path, "<f4", sizeof(float), m.ptr, {m.rows, m.cols});
}

void npy_save_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
    npy_write(path, "<f4", sizeof(float), data, shape);
}

void npy_save(const std::string& path, const std::vector<float>& v) {
    npy_write(path, "<f4", sizeof(float), v.data(), {static_cast<int64_t>(v.size())});
}

void npy_save_f64(const std::string& path, const std::vector<double>& v, const std::vector<int64_t>& shape) {
    if (checked_count(shape, path) != static_cast<int64_t>(v.size()))
        throw RuntimeError(path + ": " + std::to_string(v.size()) + " values do not fit shape " + shape_text(shape));
    npy_write(path, "<f8", sizeof(double), v.data(), shape);
}

void npz_save(const std::string& path,
              const std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>& members,
              bool compress) {
    // Serialise first so that a bad member fails before anything is written.
    std::vector<std::pair<std::string, std::vector<char>>> images;
    for (const auto& [key, member] : members) {
        if (key.empty()) throw RuntimeError(path + ": empty npz key");
        if (checked_count(member.first, path + ":" + key) != static_cast<int64_t>(member.second.size()))
            throw RuntimeError(path + ":" + key + ": " + std::to_string(member.second.size()) +
                               " values do not fit shape " + shape_text(member.first));
        images.emplace_back(key + ".npy", npy_bytes_f32(member.second.data(), member.first));
    }
    if (images.empty()) {  // libzip writes no file for an empty archive: write the end record alone
        std::string eocd("PK\x05\x06", 4);
        eocd.append(18, '\0');
        write_file_atomic(path, eocd);
        return;
    }
    const std::string tmp = temp_name(path);
    int code = 0;
    zip_t* z = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
    if (!z) write_failed(path, tmp, zip_error_text(code));
    for (const auto& [name, bytes] : images) {
        zip_source_t* src = zip_source_buffer(z, bytes.data(), bytes.size(), 0);  // images outlive zip_close
        zip_int64_t index = src ? zip_file_add(z, name.c_str(), src, ZIP_FL_OVERWRITE | ZIP_FL_ENC_UTF_8) : -1;
        if (index < 0) {
            if (src) zip_source_free(src);
            const std::string why = zip_strerror(z);
            zip_discard(z);
            write_failed(path, tmp, why);
        }
        if (zip_set_file_compression(z, static_cast<zip_uint64_t>(index), compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE,
                                     0) != 0) {
            const std::string why = zip_strerror(z);
            zip_discard(z);
            write_failed(path, tmp, why);
        }
    }
    if (zip_close(z) != 0) {
        const std::string why = zip_strerror(z);
        zip_discard(z);
        write_failed(path, tmp, why);
    }
    rename_into_place(tmp, path);
}

Matrix npy_to_matrix(const NpyArray& a, const std::string& source, const MatrixRules& rules) {
    check_matrix_shape(a.shape, source, rules);
    Matrix m(a.shape[0], a.shape[1]);
    for (int64_t i = 0; i < m.rows; ++i)
        for (int64_t j = 0; j < m.cols; ++j) {
            const double x = a.values[static_cast<size_t>(i * m.cols + j)];
            m.at(i, j) = !rules.finite || (std::isfinite(x) && std::isfinite(static_cast<float>(x)))
                             ? static_cast<float>(x)
                             : checked_float(x, source, "row " + std::to_string(i) + ", column " +
                                                            std::to_string(j) + " (0-based)");
        }
    return m;
}

std::vector<float> npy_to_vector(const NpyArray& a, const std::string& source) {
    check_vector_shape(a.shape, source);
    std::vector<float> v(a.values.size());
    for (size_t i = 0; i < v.size(); ++i) {
        const double x = a.values[i];
        v[i] = std::isfinite(x) && std::isfinite(static_cast<float>(x))
                   ? static_cast<float>(x)
                   : checked_float(x, source, "index " + std::to_string(i) + " (0-based)");
    }
    return v;
}

void transpose_f32(const float* src, int64_t rows, int64_t cols, float* dst) {
    constexpr int64_t kTile = 32;  // 32 x 32 floats: a source and a destination tile stay in L1
    for (int64_t i0 = 0; i0 < rows; i0 += kTile)
        for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
            const int64_t i1 = std::min(rows, i0 + kTile), j1 = std::min(cols, j0 + kTile);
            for (int64_t j = j0; j < j1; ++j)
                for (int64_t i = i0; i < i1; ++i) dst[j * rows + i] = src[i * cols + j];
        }
}

}  // namespace rsa
