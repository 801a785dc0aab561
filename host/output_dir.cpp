// Atomic output folders (see output_dir.h): stage beside the target, rename into place on success.
#include "rsa_gpu/output_dir.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "rsa_gpu/error.h"

namespace fs = std::filesystem;

namespace rsa {

OutputDir::OutputDir(const std::string& target, bool force) : target_(target), force_(force) {
    if (target_.empty()) throw InputError("--out: the output folder name is empty");
    while (target_.size() > 1 && target_.back() == '/') target_.pop_back();
    std::error_code ec;
    if (fs::exists(target_, ec) && !force_)
        throw InputError("output folder '" + target_ + "' already exists; use --force to replace it, or --out " +
                         "to choose another folder");
    if (fs::exists(target_, ec) && !fs::is_directory(target_, ec))
        throw InputError("output path '" + target_ + "' exists and is not a folder");
    fs::path parent = fs::path(target_).parent_path();
    if (parent.empty()) parent = ".";
    if (!fs::is_directory(parent, ec))
        throw InputError("cannot create output folder '" + target_ + "': parent folder '" + parent.string() +
                         "' does not exist");
    staging_ = (parent / ("." + fs::path(target_).filename().string() + ".partial-" + std::to_string(::getpid())))
                   .string();
    fs::remove_all(staging_, ec);
    if (!fs::create_directory(staging_, ec))
        throw InputError("cannot create output folder in '" + parent.string() + "': " + ec.message());
}

OutputDir::~OutputDir() {
    if (!committed_) {
        std::error_code ec;
        fs::remove_all(staging_, ec);
    }
}

std::string OutputDir::path(const std::string& name) const { return staging_ + "/" + name; }

void OutputDir::commit() {
    std::error_code ec;
    std::string old;
    if (fs::exists(target_, ec)) {
        old = target_ + ".old-" + std::to_string(::getpid());
        fs::rename(target_, old, ec);
        if (ec) throw RuntimeError("cannot replace '" + target_ + "': " + ec.message());
    }
    fs::rename(staging_, target_, ec);
    if (ec) {
        if (!old.empty()) fs::rename(old, target_, ec);
        throw RuntimeError("cannot move results into '" + target_ + "': " + ec.message());
    }
    committed_ = true;
    if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace rsa
