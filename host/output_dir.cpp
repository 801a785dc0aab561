// Outputs written atomically and claimed before any work (see output_dir.h): the lock on an output name, the main
// job's output folder and the one-file outputs, each staged beside its target, fsynced and renamed into place.
#include "rsa_gpu/output_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "rsa_gpu/error.h"

namespace fs = std::filesystem;

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

namespace rsa {

namespace {

std::string pid_text() { return std::to_string(::getpid()); }

// renameat2 through the raw system call (older C libraries lack the wrapper); -1 with errno on failure.
int rename2(const std::string& from, const std::string& to, unsigned flags) {
#ifdef SYS_renameat2
    return static_cast<int>(::syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
#else
    (void)from, (void)to, (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

bool unsupported(int err) { return err == EINVAL || err == ENOSYS || err == ENOTSUP || err == EOPNOTSUPP; }

// Rename without ever replacing an existing entry; false with errno EEXIST when `to` exists. File systems without
// RENAME_NOREPLACE: a hard link for files (fails on an existing name), a checked rename for folders.
bool rename_noreplace(const std::string& from, const std::string& to, bool folder) {
    if (rename2(from, to, RENAME_NOREPLACE) == 0) return true;
    if (!unsupported(errno)) return false;
    if (!folder) {
        if (::link(from.c_str(), to.c_str()) != 0) return false;
        ::unlink(from.c_str());
        return true;
    }
    struct stat st;
    if (::lstat(to.c_str(), &st) == 0) {
        errno = EEXIST;
        return false;
    }
    return std::rename(from.c_str(), to.c_str()) == 0;
}

bool taken(int err) { return err == EEXIST || err == ENOTEMPTY || err == EISDIR || err == ENOTDIR; }

void fsync_path(const std::string& path, bool folder) {
    const int fd = ::open(path.c_str(), (folder ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) throw RuntimeError("cannot write '" + path + "': " + std::strerror(errno));
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    // Some file systems cannot fsync a folder (EINVAL); the data itself was synced.
    if (rc != 0 && !(folder && (err == EINVAL || err == EROFS)))
        throw RuntimeError("cannot write '" + path + "': fsync: " + std::strerror(err));
}

// Every file below a folder, then the folders themselves, reach the disk.
void fsync_tree(const std::string& folder) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(folder, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        if (it->is_symlink(ec)) continue;
        if (it->is_regular_file(ec)) fsync_path(it->path().string(), false);
        else if (it->is_directory(ec)) fsync_path(it->path().string(), true);
    }
    if (ec) throw RuntimeError("cannot write '" + folder + "': " + ec.message());
    fsync_path(folder, true);
}

struct Parts {
    std::string parent, name;  // parent "." for a bare name
};

// Splits an output path into its folder and name; InputError for names that cannot be outputs.
Parts split_output(std::string& target, const std::string& option, bool folder) {
    if (target.empty()) throw InputError(option + ": the output " + (folder ? "folder" : "file") + " name is empty");
    if (!folder && target.back() == '/')
        throw InputError(option + ": '" + target + "' names a folder; give a file name");
    while (target.size() > 1 && target.back() == '/') target.pop_back();
    const fs::path p(target);
    Parts parts{p.parent_path().string(), p.filename().string()};
    if (parts.parent.empty()) parts.parent = ".";
    if (parts.name.empty() || parts.name == "." || parts.name == ".." || target == "/")
        throw InputError(option + ": '" + target + "' cannot be an output " + (folder ? "folder" : "file") +
                         "; name a new one");
    struct stat st;
    if (::stat(parts.parent.c_str(), &st) != 0)
        throw InputError(option + ": cannot write '" + target + "': the folder '" + parts.parent +
                         "' does not exist");
    if (!S_ISDIR(st.st_mode))
        throw InputError(option + ": cannot write '" + target + "': '" + parts.parent + "' is not a folder");
    if (::access(parts.parent.c_str(), W_OK | X_OK) != 0)
        throw InputError(option + ": cannot write '" + target + "': the folder '" + parts.parent +
                         "' is not writable (" + std::strerror(errno) + ")");
    return parts;
}

// A new staging folder `.<name>.partial-<pid>[-k]` in `parent`.
std::string make_staging_folder(const Parts& parts, const std::string& target) {
    const std::string base = parts.parent + "/." + parts.name + ".partial-" + pid_text();
    for (int k = 0; k < 100; ++k) {
        const std::string candidate = k ? base + "-" + std::to_string(k) : base;
        if (::mkdir(candidate.c_str(), 0755) == 0) return candidate;
        if (errno != EEXIST)
            throw InputError("cannot write '" + target + "': cannot create a staging folder in '" + parts.parent +
                             "': " + std::strerror(errno));
    }
    throw RuntimeError("cannot write '" + target + "': no free staging folder name in '" + parts.parent + "'");
}

// Moves finished results that could not take their final name to `<target>.new-<pid>`; returns that name.
std::string keep_aside(const std::string& from, const std::string& target, bool folder) {
    const std::string base = target + ".new-" + pid_text();
    for (int k = 0; k < 100; ++k) {
        const std::string aside = k ? base + "-" + std::to_string(k) : base;
        if (rename_noreplace(from, aside, folder)) return aside;
        if (errno != EEXIST && !taken(errno))
            throw RuntimeError("cannot write '" + target + "' nor keep the results aside: " + std::strerror(errno));
    }
    throw RuntimeError("cannot write '" + target + "' nor keep the results aside (no free name)");
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    if (from.empty()) return text;
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    return text;
}

// Runs work(); an InputError or RuntimeError it throws is thrown again with `from` replaced by `to` in its message.
void renaming_errors(const std::function<void()>& work, const std::string& from, const std::string& to) {
    try {
        work();
    } catch (const RuntimeError& e) {
        throw RuntimeError(replace_all(e.what(), from, to));
    } catch (const InputError& e) {
        throw InputError(replace_all(e.what(), from, to));
    }
}

}  // namespace

// ---------------------------------------------------------------- OutputClaim
OutputClaim::OutputClaim(const std::string& target, const std::string& option) {
    const fs::path p(target);
    std::string parent = p.parent_path().string();
    if (parent.empty()) parent = ".";
    lock_ = parent + "/." + p.filename().string() + ".lock";
    for (int attempt = 0; attempt < 20; ++attempt) {
        const int fd = ::open(lock_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
            throw InputError(option + ": cannot claim '" + target + "': cannot create the lock file '" + lock_ +
                             "': " + std::strerror(errno));
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            const int err = errno;
            std::string pid;
            char buf[32] = {};
            for (int tries = 0; tries < 50 && pid.empty(); ++tries) {  // the holder may not have written it yet
                const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
                if (n > 0) pid.assign(buf, static_cast<size_t>(n));
                while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
                if (pid.empty()) ::usleep(10000);
            }
            ::close(fd);
            if (err != EWOULDBLOCK)
                throw RuntimeError("cannot lock '" + lock_ + "': " + std::strerror(err));
            throw InputError(option + ": '" + target + "' is being written by another rsa_gpu run (pid " +
                             (pid.empty() ? std::string("unknown") : pid) + ", lock file " + lock_ +
                             "); wait for it to finish or choose another name");
        }
        // Holding the lock on an inode that a finishing run has just unlinked does not count: try again.
        struct stat held, named;
        if (::fstat(fd, &held) != 0 || ::stat(lock_.c_str(), &named) != 0 || held.st_ino != named.st_ino ||
            held.st_dev != named.st_dev) {
            ::close(fd);
            continue;
        }
        const std::string text = pid_text() + "\n";
        if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
            const int err = errno;
            ::unlink(lock_.c_str());
            ::close(fd);
            throw RuntimeError("cannot write the lock file '" + lock_ + "': " + std::strerror(err));
        }
        fd_ = fd;
        reg_ = StagingRegistration(lock_, false);
        return;
    }
    throw RuntimeError("cannot claim '" + target + "': the lock file '" + lock_ + "' keeps changing");
}

OutputClaim::~OutputClaim() {
    if (fd_ >= 0) {
        ::unlink(lock_.c_str());  // while still holding it: the next run creates a fresh one
        ::close(fd_);
    }
    reg_.release();
}

// ---------------------------------------------------------------- OutputDir
OutputDir::OutputDir(const std::string& target, bool force) : target_(target), force_(force) {
    const Parts parts = split_output(target_, "--out", true);
    claim_ = std::make_unique<OutputClaim>(target_, "--out");
    struct stat st;
    if (::lstat(target_.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            throw InputError("output path '" + target_ + "' exists and is not a folder");
        if (!force_)
            throw InputError("output folder '" + target_ + "' already exists; use --force to replace it, or --out " +
                             "to choose another folder");
        existed_ = true;
        dev_ = st.st_dev;
        ino_ = st.st_ino;
    }
    staging_ = make_staging_folder(parts, target_);
    reg_ = StagingRegistration(staging_, true);
}

OutputDir::~OutputDir() {
    if (!committed_) {
        std::error_code ec;
        fs::remove_all(staging_, ec);
    }
    reg_.release();
}

std::string OutputDir::path(const std::string& name) const { return staging_ + "/" + name; }

void OutputDir::write(const std::function<void()>& work) { renaming_errors(work, staging_, target_); }

void OutputDir::commit() {
    check_interrupt("writing the results");
    fsync_tree(staging_);
    const Parts parts{fs::path(target_).parent_path().empty() ? "." : fs::path(target_).parent_path().string(),
                      fs::path(target_).filename().string()};
    auto aside = [&](const std::string& what) {
        const std::string kept = keep_aside(staging_, target_, true);
        committed_ = true;
        reg_.release();
        throw InputError("output folder '" + target_ + "' " + what + " while this run was working; it is left as it " +
                         "is, and this run's results are in '" + kept + "'");
    };
    struct stat st;
    const bool present = ::lstat(target_.c_str(), &st) == 0;
    if (existed_ && present) {
        if (!S_ISDIR(st.st_mode) || st.st_dev != dev_ || st.st_ino != ino_) aside("was replaced by another one");
        // --force: replace exactly the folder that was there at the start.
        std::string old;  // where the replaced folder is now
        if (rename2(staging_, target_, RENAME_EXCHANGE) == 0) {
            old = staging_;
        } else {
            if (!unsupported(errno)) throw RuntimeError("cannot replace '" + target_ + "': " + std::strerror(errno));
            old = parts.parent + "/." + parts.name + ".old-" + pid_text();
            if (!rename_noreplace(target_, old, true))
                throw RuntimeError("cannot replace '" + target_ + "': " + std::strerror(errno));
            if (!rename_noreplace(staging_, target_, true)) {
                const int err = errno;
                std::rename(old.c_str(), target_.c_str());
                if (taken(err)) aside("was created again");
                throw RuntimeError("cannot move results into '" + target_ + "': " + std::strerror(err));
            }
        }
        struct stat was;
        if (::lstat(old.c_str(), &was) != 0 || was.st_dev != dev_ || was.st_ino != ino_) {
            // Swapped in the instant between the check and the rename: put it back, keep ours aside.
            if (old == staging_) rename2(staging_, target_, RENAME_EXCHANGE);
            else if (rename_noreplace(target_, staging_, true)) std::rename(old.c_str(), target_.c_str());
            aside("was replaced by another one");
        }
        committed_ = true;
        reg_.release();
        std::error_code ec;
        fs::remove_all(old, ec);
    } else {
        if (!rename_noreplace(staging_, target_, true)) {
            const int err = errno;
            if (taken(err)) aside("was created by someone else");
            throw RuntimeError("cannot move results into '" + target_ + "': " + std::strerror(err));
        }
        committed_ = true;
        reg_.release();
    }
    fsync_path(parts.parent, true);
}

// ---------------------------------------------------------------- OutputFile
OutputFile::OutputFile(const std::string& target, bool force, const std::string& option)
    : target_(target), option_(option), force_(force) {
    const Parts parts = split_output(target_, option_, false);
    struct stat st;
    if (::stat(target_.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        throw InputError(option_ + ": '" + target_ + "' is a folder; give a file name");
    claim_ = std::make_unique<OutputClaim>(target_, option_);
    if (::lstat(target_.c_str(), &st) == 0) {
        if (!force_)
            throw InputError(option_ + ": '" + target_ + "' already exists; use --force to replace it, or choose " +
                             "another name");
        existed_ = true;
    }
    staging_dir_ = make_staging_folder(parts, target_);
    reg_ = StagingRegistration(staging_dir_, true);
    staged_ = staging_dir_ + "/" + parts.name;
}

OutputFile::~OutputFile() {
    if (!committed_) {
        std::error_code ec;
        fs::remove_all(staging_dir_, ec);
    }
    reg_.release();
}

void OutputFile::write(const std::function<void(const std::string&)>& write) {
    renaming_errors([&] { write(staged_); }, staged_, target_);
}

void OutputFile::commit() {
    check_interrupt(("writing " + target_).c_str());
    fsync_path(staged_, false);
    const bool replace = existed_ && force_;
    const bool ok = replace ? std::rename(staged_.c_str(), target_.c_str()) == 0
                            : rename_noreplace(staged_, target_, false);
    if (!ok) {
        const int err = errno;
        if (!taken(err)) throw RuntimeError("cannot write '" + target_ + "': " + std::strerror(err));
        const std::string kept = keep_aside(staged_, target_, false);
        std::error_code ec;
        fs::remove_all(staging_dir_, ec);
        committed_ = true;
        reg_.release();
        throw InputError(option_ + ": '" + target_ + "' was created by someone else while this run was working; it " +
                         "is left as it is, and this run's output is in '" + kept + "'");
    }
    committed_ = true;
    std::error_code ec;
    fs::remove_all(staging_dir_, ec);
    reg_.release();
    const std::string parent = fs::path(target_).parent_path().empty() ? "." : fs::path(target_).parent_path().string();
    fsync_path(parent, true);
}

}  // namespace rsa
