#!/usr/bin/env bash
# mpirun with the flags each MPI needs on a workstation: Open MPI refuses to run as root and to
# place more ranks than cores unless told; MPICH needs neither.  Usage: scripts/mpirun.sh NP CMD...
set -euo pipefail
NP=$1; shift
MPIRUN=${MPIRUN:-mpirun}
if "$MPIRUN" --version 2>&1 | grep -qi "open mpi\|openrte\|prte"; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  exec "$MPIRUN" --oversubscribe -np "$NP" "$@"
fi
exec "$MPIRUN" -np "$NP" "$@"
