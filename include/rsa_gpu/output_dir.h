// Outputs written atomically and claimed before any work: OutputDir (the main job's folder) and OutputFile (the
// one-file commands: rdm, stimuli, synthetic, train --save-model, the main job's --save-model).
//
// Both claim the final name at construction with a sibling lock file `.<name>.lock` (created if absent, held with
// flock, holding the pid): a second run with the same output fails at once (InputError naming the other run's pid);
// a lock left by a crashed run is taken over (the kernel released its flock). An existing target without force, a
// missing or unwritable parent folder are InputErrors raised there too, before any work.
//
// Files are written into a staging folder beside the target (`.<name>.partial-<pid>`, registered for removal on a
// second interrupt); commit() fsyncs, renames into place and fsyncs the parent folder. Without force the rename
// never replaces anything; with force only the target that existed at construction is replaced (for a folder: the
// same inode), at commit. A target that appeared (or was swapped) during the run is left untouched: the results are
// kept under `<name>.new-<pid>` and commit() throws an InputError that says so. Destroyed without commit() (an
// exception, an interrupt), the staging folder and the lock are removed: nothing is left behind.
#pragma once
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>

#include "rsa_gpu/interrupt.h"

namespace rsa {

// The lock on an output name (see above). `option` names the option in messages ("--out").
class OutputClaim {
public:
    OutputClaim(const std::string& target, const std::string& option);
    ~OutputClaim();
    OutputClaim(const OutputClaim&) = delete;
    OutputClaim& operator=(const OutputClaim&) = delete;
    const std::string& lock_path() const { return lock_; }

private:
    std::string lock_;
    int fd_ = -1;
    StagingRegistration reg_;
};

class OutputDir {
public:
    OutputDir(const std::string& target, bool force);
    ~OutputDir();
    OutputDir(const OutputDir&) = delete;
    OutputDir& operator=(const OutputDir&) = delete;

    std::string path(const std::string& name) const;  // a file inside the staging folder
    // Runs work(); errors it throws name the target folder instead of the staging folder.
    void write(const std::function<void()>& work);
    const std::string& target() const { return target_; }
    const std::string& staging() const { return staging_; }
    const std::string& lock_path() const { return claim_->lock_path(); }
    void commit();

private:
    std::string target_, staging_;
    bool force_ = false, committed_ = false, existed_ = false;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    std::unique_ptr<OutputClaim> claim_;
    StagingRegistration reg_;
};

class OutputFile {
public:
    // `option` names the option in messages ("--out", "--save-model").
    OutputFile(const std::string& target, bool force, const std::string& option);
    ~OutputFile();
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    const std::string& staging_path() const { return staged_; }  // write the file here
    const std::string& staging_folder() const { return staging_dir_; }
    const std::string& lock_path() const { return claim_->lock_path(); }
    // Runs write(staging_path()); errors it throws name the target instead of the staging path.
    void write(const std::function<void(const std::string& staging_path)>& write);
    const std::string& target() const { return target_; }
    void commit();

private:
    std::string target_, option_, staging_dir_, staged_;
    bool force_ = false, committed_ = false, existed_ = false;
    std::unique_ptr<OutputClaim> claim_;
    StagingRegistration reg_;
};

}  // namespace rsa
