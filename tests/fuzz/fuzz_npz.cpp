// Fuzz harness for the .npz / .npy readers (host/npy.cpp and the loaders on top of them): a deterministic,
// seeded mutator in plain C++ (no clang needed) over a corpus of small valid and hostile files, each input
// parsed as an .npy image and, through a temporary file, as an .npz by NpzReader (listing, headers, reads),
// npz_load, cnn_load_npz and the V1 loaders. Any exception other than rsa::InputError fails, and so does a
// crash (the input is kept and named), an input slower than --max-input-seconds, or an allocation past the
// address-space cap (RLIMIT_AS: what the process maps at start plus --mem-mb, 1 GB by default): a
// std::bad_alloc or OutOfMemoryError there means a size was trusted. --require-paths also fails when the run
// did not reach each of the reader's error paths (members that lie, zip64, deflate bombs, truncated central
// directories, duplicates, ...).
//
//   fuzz_npz --seconds 30 --seed 1 --corpus tests/fuzz/corpus [--runs N] [--require-paths] [--mem-mb 1024]
//   fuzz_npz --write-seeds tests/fuzz/corpus      # the built-in seeds as files
//
// Built with -DRSA_FUZZ_LIBFUZZER (clang, -fsanitize=fuzzer) it is a libFuzzer target instead.
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <vector>

#include "fuzz/bounded_run.h"
#include "fuzz/zip_craft.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/v1_data.h"

namespace {

// ---- random numbers (splitmix64: the same stream for the same seed on every platform) -------------------

struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed) {}
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
    bool one_in(uint64_t n) { return below(n) == 0; }
};

// ---- built-in seeds ----------------------------------------------------------------------------------------

struct Seed {
    std::string name;
    std::string bytes;
};

std::string npz_saved(const std::string& dir, const std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>& m,
                      bool compress) {
    const std::string path = dir + "/seed.npz";
    rsa::npz_save(path, m, compress);
    return zip_craft::read_bytes(path);
}

std::vector<float> ramp(size_t n, float scale = 1.0f) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>(i % 97) - 3.0f;
    return v;
}

std::vector<Seed> builtin_seeds(const std::string& dir) {
    std::vector<Seed> s;
    const std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> ab = {
        {"a", {{2, 3}, ramp(6)}}, {"b", {{3}, ramp(3, 0.5f)}}};
    s.push_back({"seed_stored.npz", npz_saved(dir, ab, false)});
    s.push_back({"seed_deflated.npz", npz_saved(dir, ab, true)});
    s.push_back({"seed_v1_binned.npz", npz_saved(dir, {{"resp", {{5, 4}, ramp(20)}}, {"stimuli", {{5}, {0, 45, 90, 135, 180}}}}, true)});
    s.push_back({"seed_v1_trials.npz", npz_saved(dir, {{"sresp", {{4, 6}, ramp(24)}}, {"istim", {{6}, {0, 1, 2, 3, 4, 5}}}}, false)});
    {
        const std::string path = dir + "/model.npz";
        rsa::cnn_save_npz(path, rsa::cnn_init_params(1));
        s.push_back({"seed_model_stored.npz", zip_craft::read_bytes(path)});
    }
    const std::string image = zip_craft::npy_f32({1, 2, 3, 4, 5, 6}, {2, 3});
    {
        zip_craft::Member a{"a.npy", image};
        a.zip64 = true;
        zip_craft::Options opt;
        opt.zip64_end = true;
        s.push_back({"seed_zip64.npz", zip_craft::build_zip({a, {"b.npy", zip_craft::npy_f32({7}, {1})}}, opt)});
    }
    s.push_back({"seed_duplicate.npz", zip_craft::build_zip({{"resp.npy", image}, {"resp.npy", image}})});
    {
        // Deflate bombs, small ones: 1 MB of zeros declared as 1,000 float32 (holds more than it declares), a
        // header for 1,000 float32 followed by 10 bytes declared as 4,128 (holds less), and an honest one.
        const std::string path = dir + "/bomb.npz";
        zip_craft::write_streamed(path, {{"x.npy", zip_craft::npy_header("<f4", {1000}), 1u << 20}});
        std::string more = zip_craft::read_bytes(path);
        zip_craft::patch_size(more, "x.npy", 128 + 4000);
        s.push_back({"seed_bomb_more.npz", more});
        zip_craft::write_streamed(path, {{"x.npy", zip_craft::npy_header("<f4", {1000}), 10}});
        std::string less = zip_craft::read_bytes(path);
        zip_craft::patch_size(less, "x.npy", 128 + 4000);
        s.push_back({"seed_bomb_less.npz", less});
        zip_craft::write_streamed(path, {{"x.npy", zip_craft::npy_header("<f4", {1u << 18}), 1u << 20},
                                         {"y.npy", zip_craft::npy_header("|u1", {64}), 64}});
        s.push_back({"seed_bomb_honest.npz", zip_craft::read_bytes(path)});
    }
    {
        // Members of other dtypes and orders, stored by hand.
        std::string f8("\x93NUMPY\x01\x00", 8);
        std::string dict = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }";
        dict.append(118 - dict.size() - 1, ' ');
        dict += '\n';
        zip_craft::put16(f8, dict.size());
        f8 += dict;
        for (double v : {1.0, 2.0, 3.0, 4.0}) f8.append(reinterpret_cast<const char*>(&v), sizeof v);
        std::string u1 = zip_craft::npy_header("|u1", {3});
        u1 += std::string("\x01\x02\x03", 3);
        std::string v2("\x93NUMPY\x02\x00", 8);
        std::string d2 = "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }";
        d2.append(116 - d2.size() - 1, ' ');
        d2 += '\n';
        zip_craft::put32(v2, d2.size());
        v2 += d2 + std::string("\x01\x00\x02\x00", 4);
        s.push_back({"seed_dtypes.npz", zip_craft::build_zip({{"f8.npy", f8}, {"u1.npy", u1}, {"v2.npy", v2}})});
        s.push_back({"seed_f8_fortran.npy", f8});
    }
    s.push_back({"seed_f4.npy", image});
    s.push_back({"seed_empty.npz", npz_saved(dir, {}, false)});
    return s;
}

std::vector<Seed> load_corpus(const std::vector<std::string>& dirs) {
    std::vector<Seed> out;
    for (const std::string& d : dirs) {
        DIR* dir = ::opendir(d.c_str());
        if (!dir) {
            std::fprintf(stderr, "fuzz_npz: cannot open corpus folder %s\n", d.c_str());
            std::exit(2);
        }
        std::vector<std::string> names;
        while (dirent* e = ::readdir(dir)) {
            const std::string name = e->d_name;
            if (name != "." && name != "..") names.push_back(name);
        }
        ::closedir(dir);
        std::sort(names.begin(), names.end());
        for (const std::string& name : names) {
            struct stat st;
            const std::string path = d + "/" + name;
            if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
            if (st.st_size > 64 * 1024) {
                std::fprintf(stderr, "fuzz_npz: skipping %s (over 64 KB)\n", path.c_str());
                continue;
            }
            out.push_back({name, zip_craft::read_bytes(path)});
        }
    }
    return out;
}

// ---- mutations ---------------------------------------------------------------------------------------------

uint64_t interesting(Rng& rng, uint64_t orig, int width, uint64_t file_size) {
    const uint64_t max = width >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * width)) - 1;
    switch (rng.below(14)) {
        case 0: return 0;
        case 1: return 1;
        case 2: return max;
        case 3: return max - 1;
        case 4: return orig + 1 + rng.below(16);
        case 5: return orig - 1 - rng.below(16);
        case 6: return orig * 2;
        case 7: return orig / 2;
        case 8: return uint64_t{1} << (8 * width - 1);
        case 9: return file_size + rng.below(64);
        case 10: return file_size - rng.below(64);
        case 11: return orig * 1032 + rng.below(2048);
        case 12: return width >= 8 ? (uint64_t{1} << (32 + rng.below(31))) : rng.next();
        default: return rng.next();
    }
}

struct Field {
    int offset;
    int width;
};

// Header fields of each zip record, by signature.
const std::vector<std::pair<std::string, std::vector<Field>>>& zip_fields() {
    static const std::vector<std::pair<std::string, std::vector<Field>>> f = {
        {std::string("PK\x01\x02", 4), {{8, 2}, {10, 2}, {16, 4}, {20, 4}, {24, 4}, {28, 2}, {30, 2}, {32, 2}, {34, 2}, {42, 4}}},
        {std::string("PK\x03\x04", 4), {{6, 2}, {8, 2}, {14, 4}, {18, 4}, {22, 4}, {26, 2}, {28, 2}}},
        {std::string("PK\x05\x06", 4), {{4, 2}, {6, 2}, {8, 2}, {10, 2}, {12, 4}, {16, 4}, {20, 2}}},
        {std::string("PK\x06\x06", 4), {{4, 8}, {16, 4}, {20, 4}, {24, 8}, {32, 8}, {40, 8}, {48, 8}}},
        {std::string("PK\x06\x07", 4), {{4, 4}, {8, 8}, {16, 4}}},
    };
    return f;
}

std::vector<size_t> find_all(const std::string& s, const std::string& needle) {
    std::vector<size_t> at;
    for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) at.push_back(p);
    return at;
}

// A length or offset field of some zip record, set to an interesting value.
bool edit_zip_field(std::string& s, Rng& rng) {
    std::vector<std::pair<size_t, const std::vector<Field>*>> records;
    for (const auto& [sig, fields] : zip_fields())
        for (size_t p : find_all(s, sig)) records.emplace_back(p, &fields);
    if (records.empty()) return false;
    const auto& [pos, fields] = records[rng.below(records.size())];
    const Field f = (*fields)[rng.below(fields->size())];
    const uint64_t orig = zip_craft::get_le(s, pos + f.offset, f.width);
    zip_craft::set_le(s, pos + f.offset, interesting(rng, orig, f.width, s.size()), f.width);
    return true;
}

// The same field of a member's central record and local header, kept in agreement (as libzip checks).
bool edit_paired_field(std::string& s, Rng& rng) {
    const std::vector<size_t> central = find_all(s, std::string("PK\x01\x02", 4));
    if (central.empty()) return false;
    const size_t c = central[rng.below(central.size())];
    const size_t l = static_cast<size_t>(zip_craft::get_le(s, c + 42, 4));
    if (l + 30 > s.size() || s.compare(l, 4, std::string("PK\x03\x04", 4)) != 0) return false;
    static const Field pairs[][2] = {{{24, 4}, {22, 4}}, {{20, 4}, {18, 4}}, {{16, 4}, {14, 4}}, {{10, 2}, {8, 2}}, {{8, 2}, {6, 2}}};
    const auto& p = pairs[rng.below(5)];
    const uint64_t orig = zip_craft::get_le(s, c + p[0].offset, p[0].width);
    const uint64_t v = interesting(rng, orig, p[0].width, s.size());
    zip_craft::set_le(s, c + p[0].offset, v, p[0].width);
    zip_craft::set_le(s, l + p[1].offset, v, p[1].width);
    return true;
}

// A value inside a zip64 extended-information field (central or local).
bool edit_zip64_extra(std::string& s, Rng& rng) {
    std::vector<size_t> at;
    for (size_t p : find_all(s, std::string("\x01\x00", 2)))
        if (p + 4 <= s.size()) {
            const uint64_t len = zip_craft::get_le(s, p + 2, 2);
            if (len == 8 || len == 16 || len == 24 || len == 28) at.push_back(p);
        }
    if (at.empty()) return false;
    const size_t p = at[rng.below(at.size())];
    const uint64_t len = zip_craft::get_le(s, p + 2, 2);
    if (rng.one_in(4)) {
        zip_craft::set_le(s, p + 2, rng.below(32), 2);  // the field's own length
        return true;
    }
    const size_t field = p + 4 + 8 * rng.below(len / 8);
    zip_craft::set_le(s, field, interesting(rng, zip_craft::get_le(s, field, 8), 8, s.size()), 8);
    return true;
}

// The text of an .npy header (shape, dtype, order) or its length field.
bool edit_npy_header(std::string& s, Rng& rng) {
    static const char* shapes[] = {"()", "(0,)", "(1,)", "(3,)", "(1000,)", "(4294967296,)", "(2, 3)", "(3, 2)",
                                   "(99999999999999999999,)", "(-1,)", "(3, 0, 7)", "(1000000, 1000000)",
                                   "(18446744073709551615,)", "(6,", "[6]", "(2, 3, 4, 5, 6, 7, 8)", "(1, 6)"};
    static const char* descrs[] = {"<f4", "<f8", "|b1", "|u1", "<i8", ">f4", "<f2", "|O", "<c8", "<U3", "<u2", "|i1", "V8", ""};
    const int what = static_cast<int>(rng.below(4));
    if (what == 3) {
        const std::vector<size_t> magic = find_all(s, "\x93NUMPY");
        if (magic.empty()) return false;
        const size_t p = magic[rng.below(magic.size())];
        if (rng.one_in(2)) zip_craft::set_le(s, p + 6, 1 + rng.below(4), 1);
        else zip_craft::set_le(s, p + 8, interesting(rng, zip_craft::get_le(s, p + 8, 2), 2, s.size()), 2);
        return true;
    }
    const char* key = what == 0 ? "'shape': " : what == 1 ? "'descr': '" : "'fortran_order': ";
    const std::vector<size_t> at = find_all(s, key);
    if (at.empty()) return false;
    const size_t start = at[rng.below(at.size())] + std::strlen(key);
    const size_t end = s.find_first_of(what == 1 ? "'" : what == 0 ? ")]" : ",", start);
    if (end == std::string::npos) return false;
    std::string repl = what == 0 ? shapes[rng.below(sizeof shapes / sizeof *shapes)]
                     : what == 1 ? descrs[rng.below(sizeof descrs / sizeof *descrs)]
                                 : (rng.one_in(2) ? "True" : "False");
    const size_t old_len = end - start + (what == 0 ? 1 : 0);
    // Keep the image's length when possible (pad with spaces), so that stored sizes still agree.
    if (repl.size() < old_len) repl.append(old_len - repl.size(), ' ');
    s.replace(start, old_len, repl);
    return true;
}

// Decodes an archive into members (stored data or raw deflate data, declared CRC); false when it cannot.
bool decode(const std::string& s, std::vector<zip_craft::Member>& out) {
    const size_t eocd = s.rfind(std::string("PK\x05\x06", 4));
    if (eocd == std::string::npos || eocd + 22 > s.size()) return false;
    size_t pos = static_cast<size_t>(zip_craft::get_le(s, eocd + 16, 4));
    const uint64_t n = zip_craft::get_le(s, eocd + 10, 2);
    for (uint64_t i = 0; i < n && i < 64; ++i) {
        if (pos + 46 > s.size() || s.compare(pos, 4, std::string("PK\x01\x02", 4)) != 0) return false;
        const size_t nlen = zip_craft::get_le(s, pos + 28, 2), xlen = zip_craft::get_le(s, pos + 30, 2),
                     clen = zip_craft::get_le(s, pos + 32, 2);
        if (pos + 46 + nlen > s.size()) return false;
        zip_craft::Member m;
        m.name = s.substr(pos + 46, nlen);
        m.method = static_cast<uint16_t>(zip_craft::get_le(s, pos + 10, 2));
        m.flags = static_cast<uint16_t>(zip_craft::get_le(s, pos + 8, 2));
        m.crc = static_cast<uint32_t>(zip_craft::get_le(s, pos + 16, 4));
        m.crc_given = true;
        uint64_t comp = zip_craft::get_le(s, pos + 20, 4), size = zip_craft::get_le(s, pos + 24, 4);
        uint64_t local = zip_craft::get_le(s, pos + 42, 4);
        if (comp == 0xFFFFFFFFu || size == 0xFFFFFFFFu || local == 0xFFFFFFFFu) {
            const size_t x = pos + 46 + nlen;
            if (x + 4 > s.size() || zip_craft::get_le(s, x, 2) != 1) return false;
            size_t q = x + 4;
            if (size == 0xFFFFFFFFu) size = zip_craft::get_le(s, q, 8), q += 8;
            if (comp == 0xFFFFFFFFu) comp = zip_craft::get_le(s, q, 8), q += 8;
            if (local == 0xFFFFFFFFu) local = zip_craft::get_le(s, q, 8);
            m.zip64 = true;
        }
        if (local + 30 > s.size()) return false;
        const uint64_t data = local + 30 + zip_craft::get_le(s, local + 26, 2) + zip_craft::get_le(s, local + 28, 2);
        if (data > s.size() || comp > s.size() - data) return false;
        m.data = s.substr(static_cast<size_t>(data), static_cast<size_t>(comp));
        if (size != comp || m.method != 0) m.size = size;
        out.push_back(std::move(m));
        pos += 46 + nlen + xlen + clen;
    }
    return true;
}

// Decode, change the archive's structure, and build it again with consistent headers (then maybe lie).
bool rebuild(std::string& s, const std::vector<Seed>& corpus, Rng& rng) {
    std::vector<zip_craft::Member> m;
    if (!decode(s, m)) return false;
    zip_craft::Options opt;
    opt.zip64_end = rng.one_in(4);
    const int changes = 1 + static_cast<int>(rng.below(2));
    for (int k = 0; k < changes; ++k) {
        const size_t i = m.empty() ? 0 : rng.below(m.size());
        switch (rng.below(11)) {
            case 0:
                if (!m.empty()) m[i].zip64 = !m[i].zip64;
                break;
            case 1:  // lie about the inflated size
                if (!m.empty()) {
                    const uint64_t real = m[i].size == UINT64_MAX ? m[i].data.size() : m[i].size;
                    m[i].size = interesting(rng, real, rng.one_in(3) ? 8 : 4, s.size());
                }
                break;
            case 2:  // change a stored member's image and keep its sizes honest
                if (!m.empty() && m[i].method == 0) {
                    edit_npy_header(m[i].data, rng);
                    if (rng.one_in(2)) m[i].data.resize(rng.below(m[i].data.size() + 64), '\0');
                    m[i].crc_given = rng.one_in(8);
                    m[i].size = UINT64_MAX;
                }
                break;
            case 3:  // the same name twice
                if (!m.empty()) m.push_back(m[i]);
                break;
            case 4:
                if (m.size() > 1) m.erase(m.begin() + static_cast<long>(i));
                break;
            case 5:  // stored <-> deflate, data unchanged
                if (!m.empty()) {
                    m[i].method = m[i].method == 0 ? 8 : 0;
                    if (m[i].method == 0) m[i].size = UINT64_MAX;
                }
                break;
            case 6: {  // a member from another input
                std::vector<zip_craft::Member> other;
                const Seed& donor = corpus[rng.below(corpus.size())];
                if (decode(donor.bytes, other) && !other.empty()) m.push_back(other[rng.below(other.size())]);
                break;
            }
            case 7:  // the model's or the V1 loaders' member names
                if (!m.empty()) {
                    static const char* names[] = {"resp.npy", "stimuli.npy", "sresp.npy", "istim.npy", "conv.weight.npy",
                                                  "conv.bias.npy", "fc.weight.npy", "fc.bias.npy", "out.weight.npy",
                                                  "out.bias.npy", "a.npy", "dir/", "x"};
                    m[i].name = names[rng.below(sizeof names / sizeof *names)];
                }
                break;
            case 8:  // a lying directory
                if (rng.one_in(2)) opt.entries = static_cast<int64_t>(interesting(rng, m.size(), 2, s.size()) & 0xFFFF);
                else opt.cd_size_delta = static_cast<int64_t>(rng.below(200)) - 100;
                break;
            case 9:  // point a member at another one's data
                if (m.size() > 1) m[i].central_offset = 0;
                break;
            default:  // a deflated member's real stream with a size taken from its header's needs, or the CRC off
                if (!m.empty()) {
                    if (rng.one_in(2)) m[i].crc ^= 1u << rng.below(32);
                    else m[i].comp_size = interesting(rng, m[i].data.size(), 4, s.size());
                    m[i].crc_given = true;
                }
                break;
        }
    }
    s = zip_craft::build_zip(m, opt);
    return true;
}

std::string mutate(const std::string& in, const std::vector<Seed>& corpus, Rng& rng) {
    std::string s = in;
    const int rounds = 1 + static_cast<int>(rng.below(4));
    for (int r = 0; r < rounds; ++r) {
        switch (rng.below(12)) {
            case 0:  // bit flip
                if (!s.empty()) s[rng.below(s.size())] ^= static_cast<char>(1u << rng.below(8));
                break;
            case 1: {  // byte set
                static const unsigned char bytes[] = {0x00, 0x01, 0x7F, 0x80, 0xFF, 0x20, 0x0A, '(', ')', ',', '\''};
                if (!s.empty()) s[rng.below(s.size())] = static_cast<char>(bytes[rng.below(sizeof bytes)]);
                break;
            }
            case 2:  // truncation, mostly near the end (the central directory)
                if (!s.empty()) s.resize(rng.one_in(2) ? s.size() - std::min<size_t>(s.size(), 1 + rng.below(120)) : rng.below(s.size()));
                break;
            case 3:
            case 4:
                if (!edit_zip_field(s, rng) && !s.empty()) s[rng.below(s.size())] ^= 0x10;
                break;
            case 5:
                if (!edit_paired_field(s, rng)) edit_zip_field(s, rng);
                break;
            case 6: {  // splice a piece of another input
                const std::string& donor = corpus[rng.below(corpus.size())].bytes;
                if (donor.empty() || s.empty()) break;
                const size_t from = rng.below(donor.size()), len = 1 + rng.below(std::min<size_t>(donor.size() - from, 256));
                const size_t to = rng.below(s.size());
                s.replace(to, std::min(len, s.size() - to), donor.substr(from, len));
                break;
            }
            case 7:  // insert or delete bytes
                if (rng.one_in(2)) s.insert(rng.below(s.size() + 1), std::string(1 + rng.below(8), static_cast<char>(rng.below(256))));
                else if (!s.empty()) {
                    const size_t at = rng.below(s.size());
                    s.erase(at, 1 + rng.below(std::min<size_t>(s.size() - at, 16)));
                }
                break;
            case 8:
                if (!edit_npy_header(s, rng)) edit_zip_field(s, rng);
                break;
            case 9:
                if (!edit_zip64_extra(s, rng)) edit_paired_field(s, rng);
                break;
            default:
                if (!rebuild(s, corpus, rng)) edit_zip_field(s, rng);
                break;
        }
    }
    if (s.size() > 256 * 1024) s.resize(256 * 1024);
    return s;
}

// ---- the target ------------------------------------------------------------------------------------------

// Error paths of the reader that a run with --require-paths must reach, by a phrase of their messages.
const std::vector<std::pair<const char*, const char*>>& required_paths() {
    static const std::vector<std::pair<const char*, const char*>> p = {
        {"member data past the file", "before its central directory"},
        {"stored sizes disagree", "is stored (not compressed) but declares"},
        {"deflate ratio (bomb)", "more than deflate can expand"},
        {"member holds more than declared", "holds more data than"},
        {"member holds less than declared", "fewer than the"},
        {"declared size vs .npy header", "but its .npy header"},
        {"zip64 records", "zip64"},
        {"truncated central directory", "central directory is truncated"},
        {"directory size or place", "does not end where the end record begins"},
        {"member count", "members, but the central directory"},
        {"duplicate member", "duplicate member"},
        {"overlapping members", "overlap"},
        {"not a zip", "not a zip archive"},
        {"inflate or CRC error", "error"},
        {".npy header text", "corrupt .npy header"},
    };
    return p;
}

struct Stats {
    uint64_t inputs = 0, errors = 0, loaded = 0;
    std::map<std::string, uint64_t> kinds;  // message with the path and digits removed
    std::vector<uint64_t> required_hits = std::vector<uint64_t>(required_paths().size(), 0);
    double slowest = 0.0;

    void note(const std::string& msg, const std::string& path) {
        ++errors;
        std::string m = msg;
        for (size_t p = m.find(path); p != std::string::npos; p = m.find(path, p)) m.replace(p, path.size(), "F");
        for (size_t i = 0; i < required_paths().size(); ++i)
            if (m.find(required_paths()[i].second) != std::string::npos) ++required_hits[i];
        std::string kind;
        for (char c : m.substr(0, 90)) {
            if (c >= '0' && c <= '9') {
                if (kind.empty() || kind.back() != '#') kind += '#';
            } else {
                kind += c;
            }
        }
        ++kinds[kind];
    }
};

// One input through every reading entry point. InputError is the only acceptable failure; anything else
// propagates to the caller.
void run_one(const std::string& path, const std::string& bytes, Stats& stats) {
    const auto input_error = [&](const rsa::InputError& e) { stats.note(e.what(), path); };
    try {
        rsa::npy_parse(std::vector<char>(bytes.begin(), bytes.end()), path);
        ++stats.loaded;
    } catch (const rsa::InputError& e) {
        input_error(e);
    }
    std::remove(path.c_str());  // a new file, not a truncated one (ext4 flushes a truncated file on close)
    if (!zip_craft::write_bytes(path, bytes)) {
        std::fprintf(stderr, "fuzz_npz: cannot write %s\n", path.c_str());
        std::exit(2);
    }
    try {
        rsa::NpzReader npz(path);
        for (const rsa::NpzMember& m : npz.members()) {
            try {
                const rsa::NpyHeader h = npz.header(m.key);
                if (h.header_bytes + h.data_bytes != m.size) throw std::logic_error("header() accepted a size mismatch");
            } catch (const rsa::InputError& e) {
                input_error(e);
            }
            try {
                const rsa::NpyArray a = npz.read(m.key, (stats.inputs & 1) ? rsa::kNpzNoLimit : 4096);
                if (static_cast<int64_t>(a.values.size()) != a.count()) throw std::logic_error("read() value count");
                ++stats.loaded;
            } catch (const rsa::InputError& e) {
                input_error(e);
            }
        }
    } catch (const rsa::InputError& e) {
        input_error(e);
    }
    const uint64_t pick = stats.inputs % 4;
    try {
        if (pick == 0) rsa::npz_load(path);
        if (pick == 1) rsa::cnn_load_npz(path);
        if (pick == 2) {
            if (rsa::v1_npz_kind(path) == rsa::V1FileKind::Binned) rsa::load_v1_npz(path);
            else rsa::load_v1_trials_npz(path);
        }
        if (pick == 3) rsa::npz_keys(path);
        ++stats.loaded;
    } catch (const rsa::InputError& e) {
        input_error(e);
    }
}

// ---- crash reporting -------------------------------------------------------------------------------------

char g_crash_note[1024] = "";

void on_crash(int sig) {
    const char head[] = "\nfuzz_npz: CRASH (signal) ";
    ssize_t ignored = ::write(2, head, sizeof head - 1);
    ignored = ::write(2, g_crash_note, std::strlen(g_crash_note));
    (void)ignored;
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

void install_crash_handlers() {
    for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) ::signal(sig, on_crash);
}

std::string make_temp_dir() {
    // Memory-backed /dev/shm when there is one: every input is written to a file there.
    const char* env = std::getenv("TMPDIR");
    std::string base = env && *env ? env : "/tmp";
    if (::access("/dev/shm", W_OK) == 0) base = "/dev/shm";
    std::string tmpl = base + "/rsa_fuzz_npz_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) {
        std::perror("fuzz_npz: mkdtemp");
        std::exit(2);
    }
    return buf.data();
}

void remove_dir(const std::string& dir) {
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d)) {
            const std::string name = e->d_name;
            if (name != "." && name != "..") std::remove((dir + "/" + name).c_str());
        }
        ::closedir(d);
    }
    ::rmdir(dir.c_str());
}

}  // namespace

#ifdef RSA_FUZZ_LIBFUZZER

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string dir = make_temp_dir();
    static Stats stats;
    const std::string path = dir + "/input.npz";
    try {
        run_one(path, std::string(reinterpret_cast<const char*>(data), size), stats);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_npz: %s escaped: %s\n", typeid(e).name(), e.what());
        std::abort();
    }
    ++stats.inputs;
    return 0;
}

#else

int main(int argc, char** argv) {
    double seconds = 30.0, max_input_seconds = 5.0;
    uint64_t seed = 1, runs = 0, mem_mb = 1024;
    bool require = false, quiet = false;
    std::vector<std::string> corpus_dirs;
    std::string write_seeds, artifacts = ".";
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "fuzz_npz: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--seconds") seconds = std::atof(value().c_str());
        else if (a == "--seed") seed = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--runs") runs = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--corpus") corpus_dirs.push_back(value());
        else if (a == "--write-seeds") write_seeds = value();
        else if (a == "--mem-mb") mem_mb = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--max-input-seconds") max_input_seconds = std::atof(value().c_str());
        else if (a == "--artifacts") artifacts = value();
        else if (a == "--require-paths") require = true;
        else if (a == "--quiet") quiet = true;
        else {
            std::fprintf(stderr,
                         "usage: fuzz_npz [--seconds N] [--seed S] [--runs N] [--corpus DIR]... [--require-paths]\n"
                         "                [--mem-mb M] [--max-input-seconds T] [--artifacts DIR] [--quiet]\n"
                         "       fuzz_npz --write-seeds DIR\n");
            return 2;
        }
    }
    const std::string dir = make_temp_dir();
    std::vector<Seed> corpus = builtin_seeds(dir);
    if (!write_seeds.empty()) {
        for (const Seed& s : corpus)
            if (!zip_craft::write_bytes(write_seeds + "/" + s.name, s.bytes)) {
                std::fprintf(stderr, "fuzz_npz: cannot write %s/%s\n", write_seeds.c_str(), s.name.c_str());
                return 2;
            }
        std::printf("wrote %zu seeds to %s\n", corpus.size(), write_seeds.c_str());
        remove_dir(dir);
        return 0;
    }
    std::set<std::string> seen;
    for (const Seed& s : corpus) seen.insert(s.bytes);
    for (Seed& s : load_corpus(corpus_dirs))
        if (seen.insert(s.bytes).second) corpus.push_back(std::move(s));

    // Cap the address space: an allocation a hostile size asked for shows up as bad_alloc / OutOfMemoryError.
    // (Not under AddressSanitizer, whose shadow memory needs terabytes of address space; it reports
    // allocations that large itself.)
    const uint64_t base = bounded_run::mapped_bytes();
#if !defined(__SANITIZE_ADDRESS__)
    struct rlimit lim;
    lim.rlim_cur = lim.rlim_max = static_cast<rlim_t>(base + mem_mb * (uint64_t{1} << 20));
    if (::setrlimit(RLIMIT_AS, &lim) != 0) std::perror("fuzz_npz: setrlimit");
#endif
    install_crash_handlers();

    const std::string path = dir + "/input.npz";
    std::printf("fuzz_npz: seed %llu, %zu corpus inputs, %.0f s, address space capped at %llu MB (%llu mapped now + %llu)\n",
                static_cast<unsigned long long>(seed), corpus.size(), seconds,
                static_cast<unsigned long long>((base >> 20) + mem_mb), static_cast<unsigned long long>(base >> 20),
                static_cast<unsigned long long>(mem_mb));
    Rng rng(seed);
    Stats stats;
    const auto t0 = std::chrono::steady_clock::now();
    const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    for (uint64_t iter = 0;; ++iter) {
        if (runs ? iter >= runs : elapsed() >= seconds) break;
        // Every corpus input once as is, then mutants of random ones.
        const std::string input = iter < corpus.size() ? corpus[iter].bytes
                                                       : mutate(corpus[rng.below(corpus.size())].bytes, corpus, rng);
        std::snprintf(g_crash_note, sizeof g_crash_note, "on input %llu of seed %llu (kept at %s; replay with "
                      "--seed %llu --runs %llu)\n", static_cast<unsigned long long>(iter),
                      static_cast<unsigned long long>(seed), path.c_str(), static_cast<unsigned long long>(seed),
                      static_cast<unsigned long long>(iter + 1));
        const auto s0 = std::chrono::steady_clock::now();
        std::string failure;
        try {
            run_one(path, input, stats);
        } catch (const std::bad_alloc& e) {
            failure = std::string("std::bad_alloc escaped (an unbounded allocation): ") + e.what();
        } catch (const rsa::OutOfMemoryError& e) {
            failure = std::string("OutOfMemoryError (a size was trusted past the memory cap): ") + e.what();
        } catch (const std::exception& e) {
            failure = std::string("an exception other than InputError escaped: ") + e.what();
        } catch (...) {
            failure = "a non-standard exception escaped";
        }
        const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
        stats.slowest = std::max(stats.slowest, took);
        if (failure.empty() && took > max_input_seconds)
            failure = "input took " + std::to_string(took) + " s (limit " + std::to_string(max_input_seconds) + " s)";
        ++stats.inputs;
        if (!failure.empty()) {
            const std::string keep = artifacts + "/fuzz_npz_failure_seed" + std::to_string(seed) + "_input" +
                                     std::to_string(iter) + ".bin";
            zip_craft::write_bytes(keep, input);
            std::fprintf(stderr, "fuzz_npz: FAILURE on input %llu of seed %llu: %s\n  input kept as %s; replay with "
                         "--seed %llu --runs %llu\n", static_cast<unsigned long long>(iter),
                         static_cast<unsigned long long>(seed), failure.c_str(), keep.c_str(),
                         static_cast<unsigned long long>(seed), static_cast<unsigned long long>(iter + 1));
            return 1;
        }
    }
    remove_dir(dir);

    std::printf("fuzz_npz: %llu executions in %.1f s (%.0f/s), %llu InputErrors, %llu successful loads, "
                "slowest input %.3f s, %zu kinds of error\n",
                static_cast<unsigned long long>(stats.inputs), elapsed(), stats.inputs / std::max(elapsed(), 1e-9),
                static_cast<unsigned long long>(stats.errors), static_cast<unsigned long long>(stats.loaded),
                stats.slowest, stats.kinds.size());
    if (!quiet) {
        std::vector<std::pair<uint64_t, std::string>> top;
        for (const auto& [kind, n] : stats.kinds) top.emplace_back(n, kind);
        std::sort(top.rbegin(), top.rend());
        for (size_t i = 0; i < top.size() && i < 40; ++i)
            std::printf("  %8llu  %s\n", static_cast<unsigned long long>(top[i].first), top[i].second.c_str());
    }
    bool missing = false;
    std::printf("error paths reached:\n");
    for (size_t i = 0; i < required_paths().size(); ++i) {
        std::printf("  %8llu  %s\n", static_cast<unsigned long long>(stats.required_hits[i]), required_paths()[i].first);
        missing = missing || stats.required_hits[i] == 0;
    }
    if (require && missing) {
        std::fprintf(stderr, "fuzz_npz: FAILURE: some of the reader's error paths were never reached\n");
        return 1;
    }
    return 0;
}

#endif
