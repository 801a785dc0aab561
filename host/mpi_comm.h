// MPI start-up of the rsa_gpu binary (host/mpi_comm.cpp, built only with RSA_GPU_MPI): an MpiSession initialises MPI
// when a launcher started the process (mpirun / mpiexec / srun: Open MPI's, PMIx's or PMI's variables are set;
// RSA_GPU_MPI=0 ignores them), installs the MPI communicator as world() (distributed.h) and finalises MPI when it
// goes. Without a launcher it does nothing: a plain run of a build with MPI needs no mpirun.
#pragma once
#include "rsa_gpu/distributed.h"

namespace rsa {

class MpiSession {
public:
    MpiSession(int* argc, char*** argv);  // RuntimeError (MPI's message) when MPI_Init fails under a launcher
    ~MpiSession();
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;

private:
    bool started_ = false;
};

}  // namespace rsa
