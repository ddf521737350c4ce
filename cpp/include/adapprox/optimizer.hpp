// The C++ API: any optimizer of the library behind one class, created from a spec string
// ("adapprox:lr=1e-3,rank=4"). No Eigen types; errors are adapprox::Error exceptions.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "adapprox/communicator.hpp"
#include "adapprox/export.h"
#include "adapprox/interrupt.hpp"
#include "adapprox/tensor.hpp"

namespace adapprox {

using Hyper = std::map<std::string, double>;
class Algorithm;
struct Slot;

// "name:key=value,..." -> name and values (numbers; booleans 0/1). Throws Error(spec).
struct Spec {
  std::string name;
  Hyper values;
};
ADAPPROX_API Spec parse_spec(const std::string& text);
ADAPPROX_API std::string format_spec(const std::string& name, const Hyper& values);

// One parameter's optimizer state as the byte format stores it: every buffer of the registry's
// schema but "step", which is `step`. `scalars` is empty since format version 2 (version 1 kept
// mu_product, rank and float64 there; decode_state converts such records).
struct StateRecord {
  std::vector<int64_t> shape;
  int64_t step = 0;
  std::map<std::string, double> scalars;
  struct Buffer {
    DType dtype = DType::f32;
    std::vector<int64_t> shape;
    std::vector<unsigned char> bytes;
  };
  std::map<std::string, Buffer> buffers;
};

// Versioned, little-endian, checksummed encoding of (name, hyperparameters, per-parameter
// states; an absent state is a parameter never stepped). decode_state throws Error(state) on
// truncated or corrupt input.
ADAPPROX_API std::vector<unsigned char> encode_state(const std::string& name, const Hyper& hyper,
                                        const std::vector<const StateRecord*>& states);
struct DecodedState {
  std::string name;
  Hyper hyper;
  std::vector<std::unique_ptr<StateRecord>> states;  // null entries: never stepped
};
// expected_params >= 0: refuse (before allocating) a state with another number of parameters.
ADAPPROX_API DecodedState decode_state(const unsigned char* data, size_t size, int64_t expected_params = -1);

struct MemoryReport {
  int64_t state_bytes = 0;
  int64_t adamw_bytes = 0;
};

// Any registered optimizer (registry.hpp) with the state it keeps for a fixed list of parameters:
// the handle owns one set of buffers per parameter, in the registry's schema, created at the
// parameter's first step. Thread safety: every member function takes the optimizer's own lock,
// so calls on one optimizer from several threads run one at a time; separate optimizers never
// wait for each other.
class ADAPPROX_API Optimizer {
 public:
  // "name:key=value,..."; Error(spec) for a malformed spec, an unknown optimizer or key;
  // Error(value) for a value out of range.
  static std::unique_ptr<Optimizer> create(const std::string& spec);
  // The keys `name` accepts, with their defaults.
  static Hyper defaults(const std::string& name);

  std::string name() const;
  Hyper hyper() const;
  std::string spec() const { return format_spec(name(), hyper()); }

  // Updates params in place. lr >= 0 overrides the learning rate for this step. All inputs
  // are validated before anything is written.
  // A step stopped through set_interrupt throws Interrupted: each parameter is then either
  // stepped in full (state kept) or untouched.
  // Parameters on a CUDA device are stepped with state on that device, queued on `stream`
  // (cudaStream_t; nullptr: the legacy default stream); state saved or loaded on the host moves
  // to the parameters' device at the next step.
  void step(const std::vector<TensorRef>& params, const std::vector<TensorRef>& grads, double lr = -1,
            void* stream = nullptr);
  // The host's stop request for the following steps (interrupt.hpp), polled on the stepping
  // thread; nullptr: none. Steps also honour an InterruptScope of the calling thread.
  void set_interrupt(InterruptPoll poll, void* ctx);
  // Distributed steps (communicator.hpp): with a communicator, every parameter with at least one
  // dimension is this rank's row shard of a larger tensor (rows split over ranks in rank order),
  // and the factored optimizers compute their statistics over the whole tensor. Every rank must
  // step its shards of the same parameters together; a step refused on one rank is refused on
  // all. `comm` must outlive the steps; nullptr: whole parameters (the default).
  void set_communicator(Communicator* comm);

  std::vector<unsigned char> save() const;
  // Replaces the state with saved state of the same optimizer, checked completely before anything
  // changes. LoadHyper::saved (the default, as torch's load_state_dict restores param_groups)
  // also takes the saved hyperparameters; LoadHyper::keep keeps this optimizer's own, and the
  // state must then fit them (Error(state) otherwise).
  enum class LoadHyper { saved, keep };
  void load(const unsigned char* data, size_t size, LoadHyper hyper = LoadHyper::saved);

  MemoryReport memory() const;

  Optimizer(const class Algorithm& algo, Hyper h);
  ~Optimizer();

 private:
  struct ParamState;
  void step_locked(const std::vector<TensorRef>& params, const std::vector<TensorRef>& grads, double lr, void* stream,
                   std::vector<Slot>& slots, bool& in_driver);
  const class Algorithm& algo_;
  mutable std::mutex mu_;  // every member function holds it: one call at a time per optimizer
  Hyper h_;
  std::vector<std::unique_ptr<ParamState>> states_;  // null: never stepped
  std::vector<std::vector<int64_t>> shapes_;         // of the parameters seen so far
  std::vector<int> param_bytes_;
  InterruptPoll interrupt_poll_ = nullptr;
  void* interrupt_ctx_ = nullptr;
  Communicator* comm_ = nullptr;
};

}  // namespace adapprox
