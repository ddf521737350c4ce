// The registry and the step driver for Python: one generic step for every optimizer. The
// fronts own every state buffer (torch tensors, NumPy arrays) and pass them in through DLPack;
// factor buffers whose shape changed come back as new DLPack capsules (zero-copy).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>

#include "adapprox/adapprox.hpp"
#include "adapprox/cuda.hpp"
#include "adapprox/full_matrix_adagrad.hpp"
#include "adapprox/interrupt.hpp"
#include "adapprox/owned_buffer.hpp"
#include "adapprox/registry.hpp"
#include "binders.hpp"
#include "dlpack_import.hpp"

namespace py = pybind11;
using namespace adapprox;

namespace {

Hyper hyper_from(const py::dict& d) {
  Hyper h;
  for (auto item : d) h[item.first.cast<std::string>()] = item.second.cast<double>();
  return h;
}

DType dtype_from(const std::string& name) {
  for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16})  // parameter dtypes
    if (name == dtype_name(t)) return t;
  throw py::type_error("unsupported dtype '" + name + "'; expected float32, float64, float16 or bfloat16");
}

// A capsule owning `buf` ("dltensor_versioned", writable: NumPy marks legacy capsules
// read-only); deleted once, by the consumer or, if never consumed, by the capsule.
struct Exported {
  dlpack::ManagedTensorVersioned managed;
  std::unique_ptr<OwnedBuffer> buf;
  std::vector<int64_t> shape;
};

py::capsule export_buffer(std::unique_ptr<OwnedBuffer> buf) {
  auto* e = new Exported{};
  e->shape = buf->shape;
  e->buf = std::move(buf);
  dlpack::Tensor& t = e->managed.dl_tensor;
  t.data = e->buf->data();
  t.device = e->buf->device.kind == Device::cuda ? dlpack::Device{dlpack::kDLCUDA, e->buf->device.index}
                                                  : dlpack::Device{dlpack::kDLCPU, 0};
  t.ndim = static_cast<int32_t>(e->shape.size());
  const DType d = e->buf->dtype;
  t.dtype = {static_cast<uint8_t>(d == DType::bf16 ? dlpack::kDLBfloat : d == DType::u8 ? dlpack::kDLUInt : dlpack::kDLFloat),
             static_cast<uint8_t>(8 * dtype_size(d)), 1};
  t.shape = e->shape.data();
  t.strides = nullptr;
  t.byte_offset = 0;
  e->managed.version = {1, 0};
  e->managed.flags = 0;
  e->managed.manager_ctx = e;
  e->managed.deleter = [](dlpack::ManagedTensorVersioned* self) { delete static_cast<Exported*>(self->manager_ctx); };
  return py::capsule(&e->managed, "dltensor_versioned", [](PyObject* cap) {
    if (PyCapsule_IsValid(cap, "dltensor_versioned")) {  // never consumed
      auto* m = static_cast<dlpack::ManagedTensorVersioned*>(PyCapsule_GetPointer(cap, "dltensor_versioned"));
      m->deleter(m);
    }
  });
}

// A signal that arrived while a step ran without the GIL: polled between units of work
// (interrupt.hpp), its Python handler runs then; the exception it raises (KeyboardInterrupt for
// Ctrl-C) stops the step and is handed to the front, which raises it once it has kept the
// parameters stepped in full.
class PendingSignal {
 public:
  static bool poll(void* self) {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() == 0) return false;
    static_cast<PendingSignal*>(self)->error_ = py::error_already_set();
    return true;
  }
  py::object take() { return error_ ? error_->value() : py::object(py::none()); }

 private:
  std::optional<py::error_already_set> error_;
};

// A communicator written in Python: an object with `rank` and `size` (ints) and
// `allreduce_sum(array)`, which sums a float32 or float64 NumPy array over all ranks in place
// (the torch front's uses torch.distributed). The array views the core's buffer: nothing is
// copied. A Python exception (a timeout, a lost peer) becomes Error(comm) with its message.
class PyCommunicator final : public Communicator {
 public:
  explicit PyCommunicator(py::object obj) : obj_(std::move(obj)) {
    rank_ = obj_.attr("rank").cast<int>();
    size_ = obj_.attr("size").cast<int>();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(double* data, int64_t count) override { call(data, count); }
  void allreduce_sum(float* data, int64_t count) override { call(data, count); }

 private:
  template <class T>
  void call(T* data, int64_t count) {
    py::gil_scoped_acquire gil;
    try {
      py::array_t<T> view({static_cast<py::ssize_t>(count)}, {static_cast<py::ssize_t>(sizeof(T))}, data, py::none());
      obj_.attr("allreduce_sum")(view);
    } catch (py::error_already_set& e) {
      throw Error(ErrorKind::comm, std::string("all-reduce over ranks failed: ") + e.what());
    }
  }
  py::object obj_;
  int rank_ = 0, size_ = 1;
};

// step(name, groups) -> (replaced, stopped): one driver call for every group, each
// (hyper, params, grads, states, fresh, indices[, comms]); comms[i] is None or params[i]'s
// communicator (params[i] is then one row shard of a larger tensor); states[i] lists params[i]'s buffers in schema
// order (None for an absent factor). Slots are numbered across groups. `replaced` lists the
// buffers the step replaced, (slot, buffer, capsule); `stopped` is None, or (done, exception)
// when a signal stopped the step: done[slot] says which parameters were stepped in full.
py::tuple step_py(const std::string& name, const py::list& groups_in, const py::object& stream_in) {
  py_dlpack::CudaStream stream;  // CUDA tensors: the caller's stream (legacy default if None)
  if (!stream_in.is_none()) stream.value = stream_in.cast<intptr_t>();
  if (stream.value == 0) stream.value = 1;  // DLPack's name for the legacy default stream
  const Algorithm& algo = find_algorithm(name);
  std::vector<py_dlpack::Imported> held;
  size_t tensors = 0;  // room for every import up front: Imported is moved, never copied
  for (auto gobj : groups_in) {
    const auto g = gobj.cast<py::tuple>();
    if (g.size() == 6 || g.size() == 7) tensors += 10 * py::len(g[1]);  // parameter, gradient, at most 8 state buffers
  }
  held.reserve(tensors);
  std::vector<Group> groups;
  std::vector<std::unique_ptr<PyCommunicator>> comms;  // one per distinct Python object
  std::vector<py::handle> comm_objects;
  size_t slot = 0;
  for (auto gobj : groups_in) {
    auto g = gobj.cast<py::tuple>();
    if (g.size() != 6 && g.size() != 7)
      throw py::value_error("a group is (hyper, params, grads, states, fresh, indices[, comms])");
    const py::object group_comms = g.size() == 7 ? py::object(g[6]) : py::object(py::none());
    const py::list params = g[1], grads = g[2], states = g[3], fresh = g[4], indices = g[5];
    const size_t n = py::len(params);
    if (py::len(grads) != n || py::len(states) != n || py::len(fresh) != n || py::len(indices) != n)
      throw py::value_error("params, grads, states, fresh and indices must have the same length");
    Group group;
    group.hyper = hyper_from(g[0].cast<py::dict>());
    group.slots.resize(n);
    for (size_t i = 0; i < n; ++i, ++slot) {
      const std::string idx = "[" + std::to_string(slot) + "]";
      Slot& s = group.slots[i];
      held.push_back(py_dlpack::import_tensor(params[i], "params" + idx, true, true, &stream));
      s.param = held.back().ref;
      held.push_back(py_dlpack::import_tensor(grads[i], "grads" + idx, false, true, &stream));
      s.grad = held.back().ref;
      for (auto b : py::reinterpret_borrow<py::list>(states[i])) {
        if (b.is_none()) {
          s.state.push_back(absent_buffer());
          continue;
        }
        held.push_back(py_dlpack::import_tensor(b, "params" + idx + " state", true, true, &stream));
        s.state.push_back(held.back().ref);
      }
      s.fresh = fresh[i].cast<bool>();
      s.index = indices[i].cast<uint64_t>();
      if (!group_comms.is_none() && !group_comms[py::int_(i)].is_none()) {
        const py::handle c = group_comms[py::int_(i)];
        size_t k = 0;
        while (k < comm_objects.size() && !comm_objects[k].is(c)) ++k;
        if (k == comm_objects.size()) {
          comm_objects.push_back(c);
          comms.push_back(std::make_unique<PyCommunicator>(py::reinterpret_borrow<py::object>(c)));
        }
        s.shard.comm = comms[k].get();
      }
    }
    groups.push_back(std::move(group));
  }
  CollectingAllocator alloc;
  PendingSignal signal;
  bool stopped = false;
  {
    py::gil_scoped_release nogil;
    InterruptScope scope(&PendingSignal::poll, &signal);
    try {
      // cudaStreamLegacy is the handle 0x1 and cudaStreamPerThread 0x2, as DLPack numbers them.
      step_groups(algo, groups, alloc, reinterpret_cast<void*>(stream.value));
    } catch (const Interrupted&) {
      stopped = true;
    }
  }
  std::vector<bool> done;
  for (const Group& g : groups)
    for (const Slot& s : g.slots) done.push_back(s.done);
  py::list replaced;
  for (auto& item : alloc.take())
    if (done[item.slot]) replaced.append(py::make_tuple(item.slot, item.buffer, export_buffer(std::move(item.buf))));
  if (!stopped) return py::make_tuple(replaced, py::none());
  return py::make_tuple(replaced, py::make_tuple(py::cast(done), signal.take()));
}

py::list schema_py(const std::string& name, const py::dict& hyper, const std::vector<int64_t>& shape,
                   const std::string& dtype) {
  const Algorithm& algo = find_algorithm(name);
  const Hyper h = complete_hyper(algo, hyper_from(hyper));
  py::list out;
  for (const BufferSpec& b : state_schema(algo, h, shape, dtype_from(dtype))) {
    py::dict d;
    d["name"] = b.name;
    d["dtype"] = std::string(dtype_name(b.dtype));
    d["shape"] = py::tuple(py::cast(b.shape));
    d["like_param"] = b.like_param;
    d["follows_rows"] = b.follows_rows;
    d["resized"] = b.resized;
    d["fill"] = b.fill;
    d["moment"] = b.moment == MomentKind::none ? py::object(py::none())
                  : py::str(b.moment == MomentKind::nonnegative ? "nonnegative" : "signed");
    d["absmax_of"] = b.absmax_of.empty() ? py::object(py::none()) : py::str(b.absmax_of);
    out.append(d);
  }
  return out;
}

py::list hyper_params_py(const std::string& name) {
  py::list out;
  for (const HyperParam& p : find_algorithm(name).hyper_params()) {
    py::dict d;
    d["name"] = p.name;
    d["default"] = p.default_value;
    d["lo"] = p.lo;
    d["hi"] = p.hi;
    d["lo_open"] = p.lo_open;
    d["hi_open"] = p.hi_open;
    d["whole"] = p.whole;
    d["doc"] = p.doc;
    out.append(d);
  }
  return out;
}

void bind_registry(py::module_& m) {
  m.attr("FULL_MATRIX_MAX_NUMEL") = kFullMatrixMaxNumel;
  m.def("adapprox_workspace_bytes", [](const std::vector<int64_t>& shape, const std::string& dtype, const py::dict& hyper) {
    return adapprox_step_workspace_bytes(shape, dtype_from(dtype), complete_hyper(find_algorithm("adapprox"), hyper_from(hyper)));
  }, py::arg("shape"), py::arg("dtype"), py::arg("hyper"),
        "Bytes of transient memory one Adapprox step may allocate for a parameter (README bound).");
  m.def("tensor_info", [](py::handle obj, const std::string& name) {
    const py_dlpack::CudaStream legacy;  // a CUDA array is only looked at
    py_dlpack::Imported t = py_dlpack::import_tensor(obj, name, false, true, &legacy);
    return py::make_tuple(py::tuple(py::cast(t.ref.shape)), std::string(dtype_name(t.ref.dtype)));
  }, py::arg("array"), py::arg("name") = "array",
        "(shape, dtype name) of a DLPack-capable array (CPU, or CUDA in a build with the CUDA backend).");
  m.def("algorithms", [] {
    std::vector<std::string> names;
    for (const Algorithm* a : all_algorithms()) names.push_back(a->name());
    return names;
  }, "Names of every registered optimizer.");
  m.def("summary", [](const std::string& name) { return find_algorithm(name).summary(); }, py::arg("name"));
  m.def("supports_complex", [](const std::string& name) { return find_algorithm(name).supports_complex(); },
        py::arg("name"));
  m.def("hyper_params", &hyper_params_py, py::arg("name"),
        "The registry's hyperparameters of `name`: name, default, range, doc.");
  m.def("check_hyper", [](const std::string& name, const py::dict& hyper) {
    return complete_hyper(find_algorithm(name), hyper_from(hyper));
  }, py::arg("name"), py::arg("hyper"), "`hyper` completed with defaults and checked; ValueError naming a bad one.");
  m.def("schema", &schema_py, py::arg("name"), py::arg("hyper"), py::arg("shape"), py::arg("dtype"),
        "The state buffers of a parameter: name, dtype, shape, like_param, follows_rows, resized, fill, moment "
        "(None, 'signed' or 'nonnegative'), absmax_of (an 8-bit moment's absmax: the moment's name).");
  m.def("step", &step_py, py::arg("name"), py::arg("groups"), py::arg("stream") = py::none());
  m.def("cuda_built", &cuda::built, "Whether this build has the CUDA backend.");
  m.def("adapprox_cuda_profile", [](bool on) {
    const AdapproxCudaPhases p = adapprox_cuda_profile(on);
    py::dict d;
    d["products"] = p.products;
    d["orthonormalise"] = p.orthonormalise;
    d["eigen"] = p.eigen;
    d["update"] = p.update;
    return d;
  }, py::arg("on"), "Turn the Adapprox CUDA phase timer on/off; returns the seconds gathered since the last call.");
}

const bindings::RegisterBinder registered(bind_registry);

}  // namespace
