// Training the tutorial's CNN through a backend (CPU twin or GPU): the training set, the loop with the tutorial's
// printed lines, and the training-set accuracy. Used by the main job and by `rsa_gpu train`.
#pragma once
#include <vector>

#include "rsa_gpu/backend.h"
#include "rsa_gpu/cnn.h"
#include "rsa_gpu/grating.h"

namespace rsa {

// Trains the tutorial's CNN on its training gratings, printing the tutorial's loss lines every epochs/5 epochs
// (and a progress bar when stdout is a terminal). Returns the weights, the losses and the training-set accuracy;
// *stimuli_ms and *training_ms receive the times of drawing the training gratings and of training.
// The inputs are checked once, where they enter: `config` within the ranges of the command line's training
// options (host/commands/options.cpp, add_training_options, shared by the main job and `train`), `grating` of the
// CNN's 48 x 64 input (check_analysis_config; `train` draws the default gratings).
struct TrainedNetwork {
    std::vector<float> params;
    TrainResult result;
    int correct = 0, total = 0;
    std::vector<float> misclassified_angles;
};
TrainedNetwork train_tutorial_network(Backend& backend, const TrainConfig& config, const GratingParams& grating,
                                      bool quiet, double* stimuli_ms, double* training_ms);

}  // namespace rsa
