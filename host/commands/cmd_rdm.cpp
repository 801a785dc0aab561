// `rsa_gpu rdm`: the RDM of a response matrix .npy: 1 - Pearson correlation (default), or --method euclidean,
// mahalanobis or crossnobis (dissimilarity.h, as rsatoolbox's calc_rdm), written to an .npy (an RDM too large for
// memory is tiled straight into the output file) or, for an output named .h5 / .hdf5, to rsatoolbox's HDF5 layout
// (rdm_set.h: from memory, or from the tiled staging .npy, in blocks).
#include <cstdio>

#include "commands.h"
#include "rsa_gpu/dissimilarity.h"
#include "rsa_gpu/distributed_rdm.h"
#include "rsa_gpu/error.h"
#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/npy.h"
#include "rsa_gpu/rdm_engine.h"
#include "rsa_gpu/rdm_set.h"
#include "rsa_gpu/output_dir.h"

namespace rsa::commands {

namespace {

class RdmCommand : public Command {
public:
    void add_to(CLI::App& app) override {
        cmd_ = app.add_subcommand("rdm", "RDM of a response matrix (correlation, euclidean, mahalanobis, crossnobis)");
        add_device_and_quiet(*cmd_, device_, quiet_);
        cmd_->add_option("--responses", in_, "response matrix .npy (S x N)")->required()->check(CLI::ExistingFile);
        cmd_->add_option("--out", out_, "output .npy (S x S), or .h5 / .hdf5 (rsatoolbox's RDMs file)")->required();
        cmd_->add_flag("--force", force_, "replace an existing output file");
        add_constant_rows_option(*cmd_, rdm_text_.constant_rows);
        add_rdm_options(*cmd_, rdm_text_);
        add_dissimilarity_options(*cmd_, dissim_text_, "--method");
        cmd_->add_option("--distribute", distribute_,
                         "under mpirun / srun: how the RDM is spread over the ranks: rows (tiles of the upper triangle, "
                         "written into the output by every rank), neurons (units split, partial RDMs summed on rank 0; "
                         "the S x S RDM in every rank's memory) or auto")
            ->check(CLI::IsMember({"auto", "rows", "neurons"}));
    }

    bool chosen() const override { return static_cast<bool>(*cmd_); }
    bool heavy_blas() const override { return true; }

    int run(const std::string&) override {
        enable_progress(quiet_);
        RdmOptions options = rdm_options(rdm_text_, quiet_);
        const DissimilaritySpec spec = dissimilarity_spec(dissim_text_, "--method");
        if (distributed_run()) return run_distributed(options, spec);
        auto backend = open_backend(device_, quiet_);

        OutputFile out(out_, force_, "--out");  // claimed before any work
        const Matrix x = npy_load_matrix(in_);
        check_interrupt("loading the responses");
        check_dissimilarity_spec(spec, x.rows, x.cols);
        int64_t rows = x.rows;
        // An out-of-core (tiled) RDM is written straight into the staging file beside the output (for HDF5: into a
        // staging .npy beside it, then copied into the HDF5 file in blocks).
        const bool hdf5 = is_hdf5_path(out_);
        options.output_path = hdf5 ? out.staging_path() + ".tiles.npy" : out.staging_path();
        out.write([&](const std::string& p) {
            const RdmResult r = compute_dissimilarity_rdm(*backend, x, spec, options, in_).rdm;
            rows = r.plan.stimuli;
            check_interrupt("the RDM");
            if (!hdf5) {
                if (r.written_path.empty()) npy_save(p, r.rdm.view());  // in memory: written here (tiled: already there)
                return;
            }
            const std::string name = out.target().substr(out.target().find_last_of('/') + 1);
            const std::string rdm_name = name.substr(0, name.find_last_of('.'));
            const std::string measure = dissimilarity_name(spec.method);  // rsatoolbox's name of the method
            if (r.written_path.empty()) {
                write_square_rdm_hdf5(p, r.rdm.view().ptr, rows, rdm_name, measure, true);
            } else {
                write_square_rdm_hdf5_from_npy(p, r.written_path, rdm_name, measure, true);
                std::remove(r.written_path.c_str());
            }
        });
        out.commit();
        const std::string kind = spec.method == Dissimilarity::Correlation ? "" : dissimilarity_name(spec.method) + std::string(" ");
        std::fprintf(stderr, "wrote %s: %lld x %lld %sRDM of %lld units\n", out_.c_str(), static_cast<long long>(rows),
                     static_cast<long long>(rows), kind.c_str(), static_cast<long long>(x.cols));
        return kExitOk;
    }

private:
    // Under a launcher (distributed_rdm.h): every rank computes its part into rank 0's staging file; rank 0 alone
    // claims the output, prints and commits. The first line rank 0 prints is the plan's `distributed: ...` line.
    int run_distributed(RdmOptions options, const DissimilaritySpec& spec) {
        Comm& comm = world();
        const bool root = comm.rank() == 0;
        std::string device_note;
        auto backend = open_backend(device_, true, &device_note);
        options.kind = spec.method == Dissimilarity::Euclidean ? RdmKind::Euclidean : RdmKind::Correlation;
        bool device_said = false;
        options.on_plan = [&](const std::string& text) {  // the plan first, the device line once after it
            if (quiet_) return;
            std::fprintf(stderr, "%s\n", text.c_str());
            if (!device_said) std::fprintf(stderr, "%s\n", device_note.c_str());
            device_said = true;
        };
        options.spread_always = true;  // asked for a distributed RDM: split even a small in-memory one
        std::unique_ptr<OutputFile> out;
        agreed(comm, "claiming the output", [&] {
            if (root) out = std::make_unique<OutputFile>(out_, force_, "--out");  // claimed before any work
        });
        // Every rank knows where rank 0 stages (the shared output file) and registers it for removal at a signal.
        std::string staging = out ? out->staging_path() : std::string();
        uint64_t length = staging.size();
        comm.broadcast(&length, sizeof length, 0);
        staging.resize(length);
        comm.broadcast(staging.data(), length, 0);
        std::vector<std::pair<std::string, bool>> paths;
        if (out) paths = {{out->staging_folder(), true}, {out->lock_path(), false}};
        const auto kept = register_root_staging(comm, paths);  // removed by the others if rank 0 is killed
        const bool hdf5 = is_hdf5_path(out_);
        const std::string npy_path = hdf5 ? staging + ".tiles.npy" : staging;
        DistributedRdmResult r;
        const bool from_file = spec.method == Dissimilarity::Correlation || spec.method == Dissimilarity::Euclidean;
        auto work = [&](const std::string&) {
            if (!from_file) {
                // Mahalanobis and crossnobis: every rank computes alike (compute_rdm splits the units of an in-memory
                // RDM over the ranks), rank 0 writes.
                Matrix x;
                agreed(comm, "loading the responses", [&] {
                    x = npy_load_matrix(in_);
                    check_dissimilarity_spec(spec, x.rows, x.cols);
                });
                if (root && !quiet_)
                    std::fprintf(stderr, "distributed: %d rank%s (%s), %s RDM of the %lld x %lld input in memory: %s\n%s\n",
                                 comm.size(), comm.size() == 1 ? "" : "s", comm.name().c_str(),
                                 dissimilarity_name(spec.method), static_cast<long long>(x.rows),
                                 static_cast<long long>(x.cols),
                                 spec.method == Dissimilarity::Crossnobis
                                     ? "computed alike on every rank (its cross-validated sums are not split)"
                                     : "its units split over the ranks after whitening",
                                 device_note.c_str());
                options.on_plan = nullptr;
                const RdmResult rdm = compute_dissimilarity_rdm(*backend, x, spec, options, in_).rdm;
                r.plan.stimuli = rdm.plan.stimuli;
                r.plan.neurons = x.cols;
                agreed(comm, "writing the output", [&] {
                    if (!root) return;
                    if (!rdm.written_path.empty())
                        throw InputError(in_ + ": a " + std::string(dissimilarity_name(spec.method)) + " RDM too large "
                                         "for memory is not distributed; run it as one process");
                    if (!hdf5) {
                        npy_save(staging, rdm.rdm.view());
                        return;
                    }
                    const std::string name = out->target().substr(out->target().find_last_of('/') + 1);
                    write_square_rdm_hdf5(staging, rdm.rdm.view().ptr, rdm.plan.stimuli,
                                          name.substr(0, name.find_last_of('.')), dissimilarity_name(spec.method), true);
                });
                return;
            }
            r = distributed_rdm_file(comm, *backend, in_, npy_path, options, parse_distribute_mode(distribute_), in_);
            agreed(comm, "writing the output", [&] {
                if (!root || !hdf5) return;
                const std::string name = out->target().substr(out->target().find_last_of('/') + 1);
                write_square_rdm_hdf5_from_npy(staging, npy_path, name.substr(0, name.find_last_of('.')),
                                               dissimilarity_name(spec.method), true);
                std::remove(npy_path.c_str());
            });
        };
        if (root) out->write(work); else work(staging);
        agreed(comm, "committing the output", [&] {
            if (root) out->commit();
        });
        if (root)
            std::fprintf(stderr, "wrote %s: %lld x %lld %sRDM of %lld units (%d rank%s)\n", out_.c_str(),
                         static_cast<long long>(r.plan.stimuli), static_cast<long long>(r.plan.stimuli),
                         spec.method == Dissimilarity::Correlation ? "" : (dissimilarity_name(spec.method) + std::string(" ")).c_str(),
                         static_cast<long long>(r.plan.neurons), comm.size(), comm.size() == 1 ? "" : "s");
        return kExitOk;
    }

    CLI::App* cmd_ = nullptr;
    std::string distribute_ = "auto";
    std::string device_ = "auto";
    bool quiet_ = false, force_ = false;
    std::string in_, out_;
    DissimilarityOptionText dissim_text_;
    RdmOptionText rdm_text_;
};

}  // namespace

std::unique_ptr<Command> make_rdm_command() { return std::make_unique<RdmCommand>(); }

}  // namespace rsa::commands
