// Training the tutorial's CNN on its training gratings through a backend, with the tutorial's printed lines, a
// progress bar on a terminal, and the training-set accuracy (see train_network.h). SIGINT/SIGTERM stop it between
// epochs (and between steps on the CPU) with Interrupted.
#include "rsa_gpu/train_network.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "rsa_gpu/interrupt.h"
#include "rsa_gpu/progress.h"

namespace rsa {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }
}  // namespace

TrainedNetwork train_tutorial_network(Backend& backend, const TrainConfig& config, const GratingParams& grating,
                                      bool quiet, double* stimuli_ms, double* training_ms) {
    TrainedNetwork net;
    auto t0 = Clock::now();
    std::vector<float> angles, labels;
    cnn_training_set(config, &angles, &labels);
    const Array images = backend.gratings(angles, grating);
    *stimuli_ms = ms_since(t0);
    check_interrupt("training");

    t0 = Clock::now();
    net.params = cnn_init_params(config.seed);
    const int every = std::max(1, config.epochs / 5);
    {
        Progress bar("training", config.epochs);
        char note[48];
        net.result = backend.cnn_train(net.params, images, labels, config, [&](int epoch, float loss) {
            if (!quiet && epoch % every == 0) {
                if (progress_enabled()) std::printf("\r\033[K");
                std::printf("epoch %d | loss on last mini-batch: % .2e\n", epoch, loss);
            }
            std::snprintf(note, sizeof(note), "epochs, loss % .2e", loss);
            bar.update(epoch, note);
            std::fflush(stdout);
            check_interrupt("training");  // between epochs (the CPU twin also checks between steps)
        });
    }
    if (!quiet) std::printf("training done!\n");
    *training_ms = ms_since(t0);

    // Accuracy on the training set (the tutorial does not print it; we check the net separates the set).
    const CnnActivations act = backend.cnn_forward(net.params, images);
    net.total = static_cast<int>(labels.size());
    for (int i = 0; i < net.total; ++i) {
        const bool right = act.logit[static_cast<size_t>(i)] > 0.0f;
        if (right == (labels[static_cast<size_t>(i)] > 0.5f))
            ++net.correct;
        else
            net.misclassified_angles.push_back(angles[static_cast<size_t>(i)]);
    }
    return net;
}

}  // namespace rsa
