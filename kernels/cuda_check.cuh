// Status checks for CUDA, cuBLAS, cuDNN, cuRAND and NCCL (NCCL_CHECK, only in a plugin built with NCCL:
// RSA_GPU_HAVE_NCCL): one generator macro that evaluates the call once and on
// failure throws rsa::RuntimeError with the statement, function, file, line and the library's own message.
// RSA_CHECK_LAUNCH() follows every kernel launch (and synchronises when built with RSA_GPU_DEVICE_DEBUG).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <curand.h>

#include <string>

#include "rsa_gpu/error.h"

namespace rsa {

[[noreturn]] void gpu_fail(const char* library, const std::string& message, const char* statement,
                           const char* function, const char* file, int line);

const char* curand_status_string(curandStatus_t status);

}  // namespace rsa

#define RSA_CHECK_GEN(statement, status_type, success, library, message_of)                                  \
    do {                                                                                                    \
        const status_type rsa_status_ = (statement);                                                        \
        if (rsa_status_ != (success))                                                                       \
            ::rsa::gpu_fail(library, message_of(rsa_status_), #statement, __func__, __FILE__, __LINE__);    \
    } while (0)

#define CUDA_CHECK(statement) RSA_CHECK_GEN(statement, cudaError_t, cudaSuccess, "CUDA", cudaGetErrorString)
#define CUBLAS_CHECK(statement) \
    RSA_CHECK_GEN(statement, cublasStatus_t, CUBLAS_STATUS_SUCCESS, "cuBLAS", cublasGetStatusString)
#define CUDNN_CHECK(statement) \
    RSA_CHECK_GEN(statement, cudnnStatus_t, CUDNN_STATUS_SUCCESS, "cuDNN", ::rsa::cudnn_message)
#define CURAND_CHECK(statement) \
    RSA_CHECK_GEN(statement, curandStatus_t, CURAND_STATUS_SUCCESS, "cuRAND", ::rsa::curand_status_string)

namespace rsa {
// cuDNN's status string plus its last detailed error message.
std::string cudnn_message(cudnnStatus_t status);
}  // namespace rsa

#if defined(RSA_GPU_HAVE_NCCL)
#include <nccl.h>
namespace rsa {
// NCCL's status string plus its last detailed error message (ncclGetLastError), when it has one.
inline std::string nccl_message(ncclResult_t status) {
    std::string message = ncclGetErrorString(status);
    const char* last = ncclGetLastError(nullptr);
    if (last && *last) message += std::string(" (") + last + ")";
    return message;
}
}  // namespace rsa
#define NCCL_CHECK(statement) RSA_CHECK_GEN(statement, ncclResult_t, ncclSuccess, "NCCL", ::rsa::nccl_message)
#endif

#if defined(RSA_GPU_DEVICE_DEBUG)
#define RSA_CHECK_LAUNCH()                          \
    do {                                            \
        CUDA_CHECK(cudaGetLastError());             \
        CUDA_CHECK(cudaDeviceSynchronize());        \
    } while (0)
#else
#define RSA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
#endif

#define RSA_CEIL_DIV(a, b) (((a) + (b) - 1) / (b))
