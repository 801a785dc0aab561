// OutputDir: an output folder written atomically. Files go to a staging folder beside the target; commit()
// renames it into place (replacing an existing folder only with force). A run that fails before commit()
// leaves nothing behind. An existing target without force is an InputError raised before any work starts.
#pragma once
#include <string>

namespace rsa {

class OutputDir {
public:
    OutputDir(const std::string& target, bool force);
    ~OutputDir();
    OutputDir(const OutputDir&) = delete;
    OutputDir& operator=(const OutputDir&) = delete;

    std::string path(const std::string& name) const;  // a file inside the staging folder
    const std::string& target() const { return target_; }
    void commit();

private:
    std::string target_, staging_;
    bool force_ = false, committed_ = false;
};

}  // namespace rsa
