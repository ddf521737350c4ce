// The C++ API: any optimizer of the library behind one class, created from a spec string
// ("adapprox:lr=1e-3,rank=4"). No Eigen types; errors are adapprox::Error exceptions.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "adapprox/tensor.hpp"

namespace adapprox {

using Hyper = std::map<std::string, double>;

// "name:key=value,..." -> name and values (numbers; booleans 0/1). Throws Error(spec).
struct Spec {
  std::string name;
  Hyper values;
};
Spec parse_spec(const std::string& text);
std::string format_spec(const std::string& name, const Hyper& values);

// One parameter's optimizer state in a form every optimizer shares (and the byte format stores).
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
std::vector<unsigned char> encode_state(const std::string& name, const Hyper& hyper,
                                        const std::vector<const StateRecord*>& states);
struct DecodedState {
  std::string name;
  Hyper hyper;
  std::vector<std::unique_ptr<StateRecord>> states;  // null entries: never stepped
};
DecodedState decode_state(const unsigned char* data, size_t size);

struct MemoryReport {
  int64_t state_bytes = 0;
  int64_t adamw_bytes = 0;
};

class Optimizer {
 public:
  static std::unique_ptr<Optimizer> create(const std::string& spec);
  // The keys `name` accepts, with their defaults.
  static Hyper defaults(const std::string& name);

  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  virtual Hyper hyper() const = 0;
  std::string spec() const { return format_spec(name(), hyper()); }

  // Updates params in place. lr >= 0 overrides the learning rate for this step. All inputs
  // are validated before anything is written.
  virtual void step(const std::vector<TensorRef>& params, const std::vector<TensorRef>& grads, double lr = -1) = 0;

  std::vector<unsigned char> save() const;
  // Replaces the state (and hyperparameters) with a saved one of the same optimizer; checked
  // completely before anything changes.
  void load(const unsigned char* data, size_t size);

  virtual MemoryReport memory() const = 0;

 protected:
  virtual std::vector<std::unique_ptr<StateRecord>> export_states() const = 0;
  virtual void import_states(const Hyper& hyper, std::vector<std::unique_ptr<StateRecord>>& states) = 0;
};

}  // namespace adapprox
