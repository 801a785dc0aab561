// Crafting zip / npz files whose every field may lie, for the npz tests (tests/test_npy.cpp, test_cnn_io.cpp) and
// the fuzz harness (tests/fuzz/fuzz_npz.cpp): CRC-32, numpy-style .npy headers, a hand-written zip builder
// (stored or pre-deflated members, zip64 extra fields and end records, duplicate names, overlapping members,
// arbitrary declared sizes), a libzip writer that streams a member from a generator (a deflate bomb of 200 MB
// of zeros without holding it in memory), and patching of a member's header fields in an existing archive.
#pragma once
#include <zip.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

namespace zip_craft {

inline uint32_t crc32(const void* data, size_t n, uint32_t crc = 0) {
    static uint32_t table[256];
    static bool ready = false;
    if (!ready) {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = true;
    }
    const auto* p = static_cast<const unsigned char*>(data);
    crc = ~crc;
    for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

inline void put16(std::string& s, uint64_t v) {
    for (int i = 0; i < 2; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
inline void put32(std::string& s, uint64_t v) {
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
inline void put64(std::string& s, uint64_t v) {
    for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
inline void set_le(std::string& s, size_t at, uint64_t v, int bytes) {
    for (int i = 0; i < bytes && at + i < s.size(); ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
inline uint64_t get_le(const std::string& s, size_t at, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i)
        v = (v << 8) | (at + i < s.size() ? static_cast<unsigned char>(s[at + i]) : 0u);
    return v;
}

inline std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
inline bool write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return static_cast<bool>(out);
}

// numpy's version 1.0 header for a C-order array: magic, version, length, dict, spaces and '\n' to 64 bytes.
inline std::string npy_header(const std::string& descr, const std::vector<uint64_t>& shape) {
    std::string dims = "(";
    for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
    dims += shape.size() == 1 ? ",)" : ")";
    std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + dims + ", }";
    const size_t total = (10 + dict.size() + 1 + 63) / 64 * 64;
    dict.append(total - 10 - dict.size() - 1, ' ');
    dict += '\n';
    std::string out("\x93NUMPY\x01\x00", 8);
    put16(out, dict.size());
    return out + dict;
}

// A complete float32 .npy image holding `values`.
inline std::string npy_f32(const std::vector<float>& values, const std::vector<uint64_t>& shape) {
    std::string s = npy_header("<f4", shape);
    s.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
    return s;
}

// ---- hand-built archives -----------------------------------------------------------------------------------

struct Member {
    std::string name;
    std::string data;                          // bytes in the file (raw deflate data when method == 8)
    uint16_t method = 0;                       // 0 stored, 8 deflate, anything else to test the refusal
    uint16_t flags = 0;                        // bit 0: encrypted
    uint32_t crc = 0;                          // used when crc_given (else the CRC of data, right for stored)
    bool crc_given = false;
    uint64_t size = UINT64_MAX;                // declared uncompressed size (default: data.size())
    uint64_t comp_size = UINT64_MAX;           // declared compressed size (default: data.size())
    bool zip64 = false;                        // sizes and offset in zip64 extra fields (local and central)
    int zip64_extra_len = -1;                  // override the central zip64 field's length (short fields)
    int64_t central_offset = -1;               // point the central record at another local header (overlap)
};

struct Options {
    bool zip64_end = false;                    // zip64 end record + locator, sentinels in the classic record
    int64_t entries = -1;                      // declared member count (default: the real one)
    int64_t cd_size_delta = 0;                 // added to the declared central directory size
    int64_t zip64_end_offset = -1;             // override the locator's pointer
};

inline std::string build_zip(const std::vector<Member>& members, const Options& opt = {}) {
    std::string out, cd;
    std::vector<uint64_t> offsets;
    for (const Member& m : members) {
        const uint64_t size = m.size == UINT64_MAX ? m.data.size() : m.size;
        const uint64_t comp = m.comp_size == UINT64_MAX ? m.data.size() : m.comp_size;
        const uint32_t crc = m.crc_given ? m.crc : crc32(m.data.data(), m.data.size());
        offsets.push_back(out.size());
        std::string local("PK\x03\x04", 4);
        put16(local, m.zip64 ? 45 : 20);
        put16(local, m.flags);
        put16(local, m.method);
        put16(local, 0);       // time
        put16(local, 0x21);    // date 1980-01-01
        put32(local, crc);
        put32(local, m.zip64 ? 0xFFFFFFFFu : comp);
        put32(local, m.zip64 ? 0xFFFFFFFFu : size);
        put16(local, m.name.size());
        put16(local, m.zip64 ? 20 : 0);
        local += m.name;
        if (m.zip64) {
            put16(local, 1);
            put16(local, 16);
            put64(local, size);
            put64(local, comp);
        }
        out += local + m.data;
    }
    for (size_t i = 0; i < members.size(); ++i) {
        const Member& m = members[i];
        const uint64_t size = m.size == UINT64_MAX ? m.data.size() : m.size;
        const uint64_t comp = m.comp_size == UINT64_MAX ? m.data.size() : m.comp_size;
        const uint32_t crc = m.crc_given ? m.crc : crc32(m.data.data(), m.data.size());
        const uint64_t offset = m.central_offset >= 0 ? static_cast<uint64_t>(m.central_offset) : offsets[i];
        std::string extra;
        if (m.zip64) {
            put16(extra, 1);
            put16(extra, m.zip64_extra_len >= 0 ? m.zip64_extra_len : 24);
            std::string fields;
            put64(fields, size);
            put64(fields, comp);
            put64(fields, offset);
            const size_t len = m.zip64_extra_len >= 0 ? static_cast<size_t>(m.zip64_extra_len) : 24;
            fields.resize(len, '\0');
            extra += fields;
        }
        cd += std::string("PK\x01\x02", 4);
        put16(cd, 0x031E);  // made by: Unix, 3.0
        put16(cd, m.zip64 ? 45 : 20);
        put16(cd, m.flags);
        put16(cd, m.method);
        put16(cd, 0);
        put16(cd, 0x21);
        put32(cd, crc);
        put32(cd, m.zip64 ? 0xFFFFFFFFu : comp);
        put32(cd, m.zip64 ? 0xFFFFFFFFu : size);
        put16(cd, m.name.size());
        put16(cd, extra.size());
        put16(cd, 0);  // comment
        put16(cd, 0);  // disk
        put16(cd, 0);  // internal attributes
        put32(cd, 0100644u << 16);
        put32(cd, m.zip64 ? 0xFFFFFFFFu : offset);
        cd += m.name + extra;
    }
    const uint64_t cd_offset = out.size();
    out += cd;
    const uint64_t entries = opt.entries >= 0 ? static_cast<uint64_t>(opt.entries) : members.size();
    const uint64_t cd_size = static_cast<uint64_t>(static_cast<int64_t>(cd.size()) + opt.cd_size_delta);
    if (opt.zip64_end) {
        const uint64_t z64 = out.size();
        out += std::string("PK\x06\x06", 4);
        put64(out, 44);
        put16(out, 45);
        put16(out, 45);
        put32(out, 0);
        put32(out, 0);
        put64(out, entries);
        put64(out, entries);
        put64(out, cd_size);
        put64(out, cd_offset);
        out += std::string("PK\x06\x07", 4);
        put32(out, 0);
        put64(out, opt.zip64_end_offset >= 0 ? static_cast<uint64_t>(opt.zip64_end_offset) : z64);
        put32(out, 1);
    }
    out += std::string("PK\x05\x06", 4);
    put16(out, 0);
    put16(out, 0);
    put16(out, opt.zip64_end ? 0xFFFF : entries);
    put16(out, opt.zip64_end ? 0xFFFF : entries);
    put32(out, opt.zip64_end ? 0xFFFFFFFFu : cd_size);
    put32(out, opt.zip64_end ? 0xFFFFFFFFu : cd_offset);
    put16(out, 0);
    return out;
}

// ---- finding and patching members of an archive (no archive comment, no zip64 end record) ----------------

struct Located {
    bool found = false;
    size_t central = 0;  // offset of the central record
    size_t local = 0;    // offset of the local header
    size_t data = 0;     // offset of the member's data
};

inline Located locate(const std::string& zip, const std::string& name) {
    Located loc;
    if (zip.size() < 22) return loc;
    const size_t eocd = zip.rfind(std::string("PK\x05\x06", 4));
    if (eocd == std::string::npos) return loc;
    size_t pos = static_cast<size_t>(get_le(zip, eocd + 16, 4));
    const uint64_t n = get_le(zip, eocd + 10, 2);
    for (uint64_t i = 0; i < n && pos + 46 <= zip.size(); ++i) {
        const size_t nlen = get_le(zip, pos + 28, 2), xlen = get_le(zip, pos + 30, 2), clen = get_le(zip, pos + 32, 2);
        if (zip.compare(pos + 46, nlen, name) == 0 && nlen == name.size()) {
            loc.found = true;
            loc.central = pos;
            loc.local = static_cast<size_t>(get_le(zip, pos + 42, 4));
            loc.data = loc.local + 30 + get_le(zip, loc.local + 26, 2) + get_le(zip, loc.local + 28, 2);
            return loc;
        }
        pos += 46 + nlen + xlen + clen;
    }
    return loc;
}

// Sets the declared sizes / CRC of a member in both its local header and its central record (so that the two
// agree, as libzip's consistency check wants). Returns false when the member is not there.
inline bool patch_sizes(std::string& zip, const std::string& name, uint64_t comp_size, uint64_t size) {
    const Located l = locate(zip, name);
    if (!l.found) return false;
    set_le(zip, l.central + 20, comp_size, 4);
    set_le(zip, l.central + 24, size, 4);
    set_le(zip, l.local + 18, comp_size, 4);
    set_le(zip, l.local + 22, size, 4);
    return true;
}
inline bool patch_size(std::string& zip, const std::string& name, uint64_t size) {
    const Located l = locate(zip, name);
    return l.found && patch_sizes(zip, name, get_le(zip, l.central + 20, 4), size);
}
inline bool patch_crc(std::string& zip, const std::string& name, uint32_t crc) {
    const Located l = locate(zip, name);
    if (!l.found) return false;
    set_le(zip, l.central + 16, crc, 4);
    set_le(zip, l.local + 14, crc, 4);
    return true;
}
// The raw bytes of a member's data as stored (the deflate stream of a deflated member).
inline std::string member_data(const std::string& zip, const std::string& name) {
    const Located l = locate(zip, name);
    if (!l.found) return "";
    return zip.substr(l.data, static_cast<size_t>(get_le(zip, l.central + 20, 4)));
}

// ---- libzip writer with generated member contents --------------------------------------------------------

struct Streamed {
    std::string name;
    std::string head;         // first bytes (e.g. an .npy header)
    uint64_t zeros = 0;       // followed by this many zero bytes, generated while libzip reads them
    bool deflate = true;
    int level = 1;            // deflate level (1: fast, still ~1000:1 on zeros)
};

namespace detail {
struct StreamState {
    const Streamed* spec = nullptr;
    uint64_t pos = 0;
};

inline zip_int64_t stream_callback(void* user, void* data, zip_uint64_t len, zip_source_cmd_t cmd) {
    auto* s = static_cast<StreamState*>(user);
    const uint64_t total = s->spec->head.size() + s->spec->zeros;
    switch (cmd) {
        case ZIP_SOURCE_OPEN: s->pos = 0; return 0;
        case ZIP_SOURCE_READ: {
            const uint64_t n = std::min<uint64_t>(len, total - s->pos);
            char* out = static_cast<char*>(data);
            for (uint64_t i = 0; i < n; ++i) {
                const uint64_t at = s->pos + i;
                out[i] = at < s->spec->head.size() ? s->spec->head[static_cast<size_t>(at)] : '\0';
            }
            s->pos += n;
            return static_cast<zip_int64_t>(n);
        }
        case ZIP_SOURCE_CLOSE: return 0;
        case ZIP_SOURCE_STAT: {
            auto* st = static_cast<zip_stat_t*>(data);
            zip_stat_init(st);
            st->size = total;
            st->mtime = 315532800;  // 1980-01-01
            st->valid |= ZIP_STAT_SIZE | ZIP_STAT_MTIME;
            return sizeof(*st);
        }
        case ZIP_SOURCE_ERROR: {
            auto* e = static_cast<int*>(data);
            if (len >= 2 * sizeof(int)) {
                e[0] = 0;
                e[1] = 0;
            }
            return 2 * sizeof(int);
        }
        case ZIP_SOURCE_FREE: return 0;
        case ZIP_SOURCE_SUPPORTS:
            return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE,
                                                  ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, -1);
        default: return -1;
    }
}
}  // namespace detail

// Writes (or, with append, adds to) the archive at path; returns "" on success, else libzip's message.
inline std::string write_streamed(const std::string& path, const std::vector<Streamed>& members, bool append = false) {
    int code = 0;
    zip_t* z = zip_open(path.c_str(), append ? ZIP_CREATE : ZIP_CREATE | ZIP_TRUNCATE, &code);
    if (!z) return "cannot open " + path + " (libzip error " + std::to_string(code) + ")";
    std::vector<std::unique_ptr<detail::StreamState>> states;
    for (const Streamed& m : members) {
        states.push_back(std::make_unique<detail::StreamState>());
        states.back()->spec = &m;
        zip_source_t* src = zip_source_function(z, detail::stream_callback, states.back().get());
        const zip_int64_t index = src ? zip_file_add(z, m.name.c_str(), src, ZIP_FL_OVERWRITE) : -1;
        if (index < 0 ||
            zip_set_file_compression(z, static_cast<zip_uint64_t>(index), m.deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE,
                                     static_cast<zip_uint32_t>(m.level)) != 0) {
            if (src && index < 0) zip_source_free(src);
            const std::string why = zip_strerror(z);
            zip_discard(z);
            return why;
        }
    }
    if (zip_close(z) != 0) {
        const std::string why = zip_strerror(z);
        zip_discard(z);
        return why;
    }
    return "";
}

}  // namespace zip_craft
