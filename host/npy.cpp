// .npy / .npz reading and writing (numpy's formats, see npy.h): a small parser for the Python-literal header,
// dtype conversion to double, Fortran-to-C reordering, npz members through libzip, and atomic writers
// (temporary file in the same folder, then rename).
#include "rsa_gpu/npy.h"

#include <unistd.h>
#include <zip.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>

#include "rsa_gpu/error.h"

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

std::vector<char> read_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw InputError(path + ": " + errno_text(errno));
    std::vector<char> bytes;
    char buf[1 << 16];
    for (;;) {
        const size_t n = std::fread(buf, 1, sizeof buf, f);
        bytes.insert(bytes.end(), buf, buf + n);
        if (n < sizeof buf) break;
    }
    const int err = std::ferror(f) ? errno : 0;
    std::fclose(f);
    if (err) throw InputError(path + ": cannot read: " + std::strerror(err));
    return bytes;
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

void write_atomic(const std::string& path, const char* data, size_t size) {
    const std::string tmp = temp_name(path);
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) {
        const int err = errno;
        write_failed(path, tmp, std::strerror(err));
    }
    const bool wrote = size == 0 || std::fwrite(data, 1, size, f) == size;
    int err = wrote ? 0 : errno;
    if (!err && std::fflush(f) != 0) err = errno;
    if (!err && ::fsync(::fileno(f)) != 0) err = errno;
    if (std::fclose(f) != 0 && !err) err = errno;
    if (!wrote && !err) err = EIO;
    if (err) write_failed(path, tmp, std::strerror(err));
    rename_into_place(tmp, path);
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

std::vector<char> npy_bytes(const char* descr, size_t item, const void* data, const std::vector<int64_t>& shape) {
    const int64_t n = checked_count(shape, "npy");
    std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " +
                         shape_text(shape) + ", }";
    // Pad with spaces and a final newline so that the data starts at a multiple of 64 bytes, as numpy does.
    const size_t preamble = kMagicLen + 2 + 2;
    const size_t total = (preamble + header.size() + 1 + 63) / 64 * 64;
    header.append(total - preamble - header.size() - 1, ' ');
    header += '\n';
    std::vector<char> out;
    out.reserve(total + static_cast<size_t>(n) * item);
    out.insert(out.end(), kMagic, kMagic + kMagicLen);
    out.push_back(1);
    out.push_back(0);
    out.push_back(static_cast<char>(header.size() & 0xff));
    out.push_back(static_cast<char>((header.size() >> 8) & 0xff));
    out.insert(out.end(), header.begin(), header.end());
    const char* bytes = static_cast<const char*>(data);
    if (n > 0) out.insert(out.end(), bytes, bytes + static_cast<size_t>(n) * item);
    return out;
}

std::string zip_error_text(int code) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    std::string s = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    return s;
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
        if (code == ZIP_ER_NOZIP) throw InputError(path + ": not a zip archive, or a truncated one (an .npz must be a complete zip)");
        throw InputError(path + ": cannot open as .npz: " + zip_error_text(code));
    }
    return ZipPtr(z);
}

std::vector<char> read_member(zip_t* z, zip_uint64_t index, const std::string& path, const std::string& name) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z, index, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
        throw InputError(path + ": member '" + name + "': " + zip_strerror(z));
    zip_file_t* f = zip_fopen_index(z, index, 0);
    if (!f) throw InputError(path + ": member '" + name + "': " + zip_strerror(z));
    std::vector<char> bytes(static_cast<size_t>(st.size));
    zip_uint64_t done = 0;
    std::string error;
    while (done < st.size) {
        const zip_int64_t n = zip_fread(f, bytes.data() + done, st.size - done);
        if (n < 0) {
            error = zip_file_strerror(f);
            break;
        }
        if (n == 0) {
            error = "member ends early";
            break;
        }
        done += static_cast<zip_uint64_t>(n);
    }
    if (error.empty()) {  // reading to the end lets libzip check the CRC
        char extra;
        if (zip_fread(f, &extra, 1) < 0) error = zip_file_strerror(f);
    }
    zip_fclose(f);
    if (!error.empty()) throw InputError(path + ": member '" + name + "': " + error);
    return bytes;
}

bool is_npy_member(const std::string& name) {
    return name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0;
}

}  // namespace

// ---- reading ---------------------------------------------------------------------------------------------

NpyArray npy_parse(const std::vector<char>& bytes, const std::string& source) {
    if (bytes.size() < kMagicLen + 2 || std::memcmp(bytes.data(), kMagic, kMagicLen) != 0)
        throw InputError(source + ": not an .npy file (bad magic string)");
    const int major = static_cast<unsigned char>(bytes[6]);
    const int minor = static_cast<unsigned char>(bytes[7]);
    size_t len_bytes;
    if (major == 1) len_bytes = 2;
    else if (major == 2 || major == 3) len_bytes = 4;
    else
        throw InputError(source + ": unsupported .npy format version " + std::to_string(major) + "." +
                         std::to_string(minor));
    const size_t preamble = 8 + len_bytes;
    if (bytes.size() < preamble) throw InputError(source + ": truncated: the .npy header is incomplete");
    const uint64_t header_len = read_le(bytes.data() + 8, static_cast<int>(len_bytes));
    if (header_len > bytes.size() - preamble)
        throw InputError(source + ": truncated: header of " + std::to_string(header_len) + " bytes, found " +
                         std::to_string(bytes.size() - preamble));
    const std::string header(bytes.data() + preamble, static_cast<size_t>(header_len));

    HeaderParser parser(header, source);
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

    NpyArray a;
    a.descr = descr.str;
    for (const PyValue& d : shape.items) {
        if (d.kind != PyValue::Int || d.integer < 0) parser.fail("'shape' holds a value that is not a size");
        a.shape.push_back(d.integer);
    }
    const DType type = parse_descr(a.descr, source);

    const uint64_t available = bytes.size() - preamble - header_len;
    // Element count, saturating: anything beyond the data present is reported as truncation.
    uint64_t count = 1;
    bool huge = false;
    for (int64_t d : a.shape) {
        const uint64_t ud = static_cast<uint64_t>(d);
        if (ud == 0) {
            count = 0;
            huge = false;
            break;
        }
        if (count > std::numeric_limits<uint64_t>::max() / 16 / ud) huge = true;
        else count *= ud;
    }
    if (huge) throw InputError(source + ": shape " + shape_text(a.shape) + " is too large for the data present (" +
                               std::to_string(available) + " bytes)");
    const uint64_t needed = count * static_cast<uint64_t>(type.size);
    if (needed > available)
        throw InputError(source + ": truncated: expected " + std::to_string(needed) + " bytes of data, found " +
                         std::to_string(available));

    std::vector<double> values(static_cast<size_t>(count));
    convert_any(type, bytes.data() + preamble + header_len, static_cast<int64_t>(count), values.data());
    a.values = (fortran.flag && a.shape.size() > 1) ? fortran_to_c(values, a.shape) : std::move(values);
    return a;
}

NpyArray npy_load(const std::string& path) { return npy_parse(read_file(path), path); }

std::map<std::string, NpyArray> npz_load(const std::string& path) {
    ZipPtr z = open_npz(path);
    std::map<std::string, NpyArray> out;
    const zip_int64_t n = zip_get_num_entries(z.get(), 0);
    for (zip_int64_t i = 0; i < n; ++i) {
        const char* raw = zip_get_name(z.get(), static_cast<zip_uint64_t>(i), 0);
        if (!raw) throw InputError(path + ": " + zip_strerror(z.get()));
        const std::string name = raw;
        if (!is_npy_member(name)) continue;  // folders and non-array files are not arrays
        const std::string key = name.substr(0, name.size() - 4);
        out[key] = npy_parse(read_member(z.get(), static_cast<zip_uint64_t>(i), path, name), path + ":" + key);
    }
    return out;
}

std::vector<std::string> npz_keys(const std::string& path) {
    ZipPtr z = open_npz(path);
    std::vector<std::string> keys;
    const zip_int64_t n = zip_get_num_entries(z.get(), 0);
    for (zip_int64_t i = 0; i < n; ++i) {
        const char* raw = zip_get_name(z.get(), static_cast<zip_uint64_t>(i), 0);
        if (!raw || !is_npy_member(raw)) continue;
        const std::string member = raw;
        keys.push_back(member.substr(0, member.size() - 4));
    }
    return keys;
}

NpyArray npz_load_key(const std::string& path, const std::string& key) {
    ZipPtr z = open_npz(path);
    const std::string name = is_npy_member(key) ? key : key + ".npy";
    const zip_int64_t index = zip_name_locate(z.get(), name.c_str(), 0);
    if (index < 0) {
        std::string present;
        const zip_int64_t n = zip_get_num_entries(z.get(), 0);
        for (zip_int64_t i = 0; i < n; ++i) {
            const char* raw = zip_get_name(z.get(), static_cast<zip_uint64_t>(i), 0);
            if (!raw || !is_npy_member(raw)) continue;
            const std::string member = raw;
            present += (present.empty() ? "" : ", ") + member.substr(0, member.size() - 4);
        }
        throw InputError(path + ": no key '" + key + "'; keys present: " + (present.empty() ? "(none)" : present));
    }
    const std::string stem = name.substr(0, name.size() - 4);
    return npy_parse(read_member(z.get(), static_cast<zip_uint64_t>(index), path, name), path + ":" + stem);
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

void npy_save(const std::string& path, const Matrix& m) {
    if (m.rows < 0 || m.cols < 0 || static_cast<int64_t>(m.data.size()) != m.rows * m.cols)
        throw RuntimeError(path + ": matrix data holds " + std::to_string(m.data.size()) + " values for shape (" +
                           std::to_string(m.rows) + ", " + std::to_string(m.cols) + ")");
    const std::vector<char> bytes = npy_bytes_f32(m.data.data(), {m.rows, m.cols});
    write_atomic(path, bytes.data(), bytes.size());
}

void npy_save(const std::string& path, const std::vector<float>& v) {
    const std::vector<char> bytes = npy_bytes_f32(v.data(), {static_cast<int64_t>(v.size())});
    write_atomic(path, bytes.data(), bytes.size());
}

void npy_save_f64(const std::string& path, const std::vector<double>& v, const std::vector<int64_t>& shape) {
    if (checked_count(shape, path) != static_cast<int64_t>(v.size()))
        throw RuntimeError(path + ": " + std::to_string(v.size()) + " values do not fit shape " + shape_text(shape));
    const std::vector<char> bytes = npy_bytes_f64(v.data(), shape);
    write_atomic(path, bytes.data(), bytes.size());
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

// ---- conversion helpers ----------------------------------------------------------------------------------

namespace {

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

}  // namespace

Matrix npy_to_matrix(const NpyArray& a, const std::string& source) {
    if (a.shape.size() != 2)
        throw InputError(source + ": expected a 2-D array, got shape " + shape_text(a.shape));
    if (a.count() == 0) throw InputError(source + ": array is empty (shape " + shape_text(a.shape) + ")");
    Matrix m(a.shape[0], a.shape[1]);
    for (int64_t i = 0; i < m.rows; ++i)
        for (int64_t j = 0; j < m.cols; ++j) {
            const double x = a.values[static_cast<size_t>(i * m.cols + j)];
            m.at(i, j) = std::isfinite(x) && std::isfinite(static_cast<float>(x))
                             ? static_cast<float>(x)
                             : checked_float(x, source, "row " + std::to_string(i) + ", column " +
                                                            std::to_string(j) + " (0-based)");
        }
    return m;
}

std::vector<float> npy_to_vector(const NpyArray& a, const std::string& source) {
    const bool one_d = a.shape.size() == 1;
    const bool thin_2d = a.shape.size() == 2 && (a.shape[0] == 1 || a.shape[1] == 1);
    if (!one_d && !thin_2d)
        throw InputError(source + ": expected a 1-D array (or one row/column), got shape " + shape_text(a.shape));
    if (a.count() == 0) throw InputError(source + ": array is empty (shape " + shape_text(a.shape) + ")");
    std::vector<float> v(a.values.size());
    for (size_t i = 0; i < v.size(); ++i) {
        const double x = a.values[i];
        v[i] = std::isfinite(x) && std::isfinite(static_cast<float>(x))
                   ? static_cast<float>(x)
                   : checked_float(x, source, "index " + std::to_string(i) + " (0-based)");
    }
    return v;
}

}  // namespace rsa
