// Failure reporting for the status-check macros of cuda_check.cuh.
#include "cuda_check.cuh"

#include <sstream>

namespace rsa {

void gpu_fail(const char* library, const std::string& message, const char* statement, const char* function,
              const char* file, int line) {
    std::ostringstream os;
    os << library << " error: " << message << "\n  in " << statement << "\n  at " << file << ":" << line << " ("
       << function << ")";
    throw RuntimeError(os.str());
}

std::string cudnn_message(cudnnStatus_t status) {
    std::string message = cudnnGetErrorString(status);
    char detail[1024] = {0};
    cudnnGetLastErrorString(detail, sizeof(detail));
    if (detail[0] != '\0') message += std::string(" (") + detail + ")";
    return message;
}

const char* curand_status_string(curandStatus_t status) {
    switch (status) {
        case CURAND_STATUS_SUCCESS: return "CURAND_STATUS_SUCCESS";
        case CURAND_STATUS_VERSION_MISMATCH: return "CURAND_STATUS_VERSION_MISMATCH";
        case CURAND_STATUS_NOT_INITIALIZED: return "CURAND_STATUS_NOT_INITIALIZED (generator not initialised)";
        case CURAND_STATUS_ALLOCATION_FAILED: return "CURAND_STATUS_ALLOCATION_FAILED";
        case CURAND_STATUS_TYPE_ERROR: return "CURAND_STATUS_TYPE_ERROR";
        case CURAND_STATUS_OUT_OF_RANGE: return "CURAND_STATUS_OUT_OF_RANGE";
        case CURAND_STATUS_LENGTH_NOT_MULTIPLE: return "CURAND_STATUS_LENGTH_NOT_MULTIPLE";
        case CURAND_STATUS_DOUBLE_PRECISION_REQUIRED: return "CURAND_STATUS_DOUBLE_PRECISION_REQUIRED";
        case CURAND_STATUS_LAUNCH_FAILURE: return "CURAND_STATUS_LAUNCH_FAILURE";
        case CURAND_STATUS_PREEXISTING_FAILURE: return "CURAND_STATUS_PREEXISTING_FAILURE";
        case CURAND_STATUS_INITIALIZATION_FAILED: return "CURAND_STATUS_INITIALIZATION_FAILED";
        case CURAND_STATUS_ARCH_MISMATCH: return "CURAND_STATUS_ARCH_MISMATCH";
        case CURAND_STATUS_INTERNAL_ERROR: return "CURAND_STATUS_INTERNAL_ERROR";
        default: return "unknown cuRAND status";
    }
}

}  // namespace rsa
