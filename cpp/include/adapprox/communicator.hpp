// A communicator: what the core needs from a distributed runtime to step parameters whose rows
// are spread over ranks (FSDP2's Shard(0), or a C/MPI program's own row split). The core calls
// it only from the thread that called step, in the same order on every rank.
//
// A parameter stepped with a communicator is one shard of a larger tensor: the rows of its first
// dimension (rank r holds rows [offset_r, offset_r + rows_r), in rank order; a shard may be
// empty), the other dimensions whole. Factored optimizers then compute statistics over the whole
// matrix: Adafactor all-reduces its column sums and norms, Adapprox its sketch products, Gram
// matrices and norms (communicator traffic per step: O((n + w) w) numbers per matrix, never
// O(m n)). Elementwise optimizers need none and ignore it.
//
// Requirement: an all-reduce leaves the same bits on every rank (gloo, NCCL and the usual MPI
// reductions do), because every rank takes the same decisions (ranks, fallbacks) from its result.
#pragma once
#include <cstdint>

#include "adapprox/export.h"

namespace adapprox {

class ADAPPROX_API Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;  // 0 .. size() - 1
  virtual int size() const = 0;
  // Element-wise sum over all ranks, in place. Throws Error on failure (a timeout, a lost peer).
  virtual void allreduce_sum(double* data, int64_t count) = 0;
  virtual void allreduce_sum(float* data, int64_t count) = 0;
};

// Where one parameter's shard sits in the whole tensor (filled by the step driver).
struct RowShard {
  Communicator* comm = nullptr;  // null: the parameter is whole
  int64_t global_rows = 0;       // rows of the whole tensor (its first dimension)
  int64_t row_offset = 0;        // this rank's first row
  bool located = false;          // global_rows and row_offset are filled in
  bool sharded() const { return comm != nullptr; }
};

}  // namespace adapprox
