#include "dlpack_import.hpp"

#include <vector>

#include "adapprox/cuda.hpp"
#include "adapprox/tensor_ops.hpp"

namespace py = pybind11;

namespace adapprox::py_dlpack {
namespace {

const char* device_name(int32_t type) {
  switch (type) {
    case dlpack::kDLCPU: return "cpu";
    case dlpack::kDLCUDA: return "cuda";
    case dlpack::kDLCUDAHost: return "cuda_host";
    case dlpack::kDLCUDAManaged: return "cuda_managed";
    case dlpack::kDLROCM: return "rocm";
    case dlpack::kDLMetal: return "metal";
    case dlpack::kDLVulkan: return "vulkan";
    case dlpack::kDLOneAPI: return "oneapi";
    default: return "unknown";
  }
}

bool to_dtype(const dlpack::DataType& t, DType* out) {
  if (t.lanes != 1) return false;
  if (t.code == dlpack::kDLFloat && t.bits == 32) return *out = DType::f32, true;
  if (t.code == dlpack::kDLFloat && t.bits == 64) return *out = DType::f64, true;
  if (t.code == dlpack::kDLFloat && t.bits == 16) return *out = DType::f16, true;
  if (t.code == dlpack::kDLBfloat && t.bits == 16) return *out = DType::bf16, true;
  if (t.code == dlpack::kDLUInt && t.bits == 8) return *out = DType::u8, true;  // 8-bit moment codes
  return false;
}

std::string dtype_desc(const dlpack::DataType& t) {
  const char* kinds[] = {"int", "uint", "float", "opaque", "bfloat", "complex", "bool"};
  std::string s = t.code <= 6 ? kinds[t.code] : "code" + std::to_string(t.code);
  return s + std::to_string(t.bits) + (t.lanes != 1 ? "x" + std::to_string(t.lanes) : "");
}

// C-contiguous: strides absent, or equal to the row-major strides wherever the extent is > 1.
bool is_c_contiguous(const dlpack::Tensor& t) {
  if (!t.strides) return true;
  for (int i = 0; i < t.ndim; ++i)
    if (t.shape[i] == 0) return true;  // an empty tensor has no layout to get wrong
  int64_t expect = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    if (t.shape[i] != 1 && t.strides[i] != expect) return false;
    expect *= t.shape[i];
  }
  return true;
}

}  // namespace

Imported& Imported::operator=(Imported&& o) noexcept {
  if (this != &o) {
    release();
    ref = std::move(o.ref);
    read_only = o.read_only;
    legacy_ = o.legacy_;
    versioned_ = o.versioned_;
    o.legacy_ = nullptr;
    o.versioned_ = nullptr;
  }
  return *this;
}

void Imported::release() {
  if (versioned_ && versioned_->deleter) versioned_->deleter(versioned_);
  if (legacy_ && legacy_->deleter) legacy_->deleter(legacy_);
  versioned_ = nullptr;
  legacy_ = nullptr;
}

// The capsule of `obj`: obj itself when it is one (a DLPack capsule made by the caller, e.g.
// torch.utils.dlpack.to_dlpack: the fast path of adapprox.torch), else obj.__dlpack__().
std::string unsupported_device(const std::string& name, int32_t type, int index, const CudaStream* stream) {
  std::string why = "this build of adapprox runs on the CPU only (move the tensor to the CPU)";
  if (type == dlpack::kDLCUDA && cuda::built() && !stream) why = "only optimizer steps take CUDA tensors";
  else if (type == dlpack::kDLCUDA && cuda::built()) why = "";
  else if (cuda::built()) why = "adapprox runs on the CPU and on CUDA devices";
  return why.empty() ? "" : name + ": unsupported device '" + device_name(type) + ":" + std::to_string(index) + "'; " + why;
}

py::object export_capsule(py::handle obj, const std::string& name, const CudaStream* stream) {
  if (PyCapsule_CheckExact(obj.ptr())) return py::reinterpret_borrow<py::object>(obj);
  if (!py::hasattr(obj, "__dlpack__") || !py::hasattr(obj, "__dlpack_device__"))
    throw py::type_error(name + ": expected an array that supports DLPack (NumPy, PyTorch, CuPy, JAX), got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  // Ask where it lives before exporting, so a CUDA tensor never gets a stream it cannot use.
  py::tuple dev = obj.attr("__dlpack_device__")();
  const int32_t dev_type = dev[0].cast<int32_t>();
  if (dev_type != dlpack::kDLCPU) {
    const std::string why = unsupported_device(name, dev_type, dev[1].cast<int>(), stream);
    if (!why.empty()) throw py::value_error(why);
  }
  // A CUDA producer makes the consumer's stream wait for its pending work on the tensor.
  py::object on = dev_type == dlpack::kDLCUDA ? py::object(py::int_(stream->value)) : py::object(py::none());
  try {
    if (on.is_none()) return obj.attr("__dlpack__")(py::arg("max_version") = py::make_tuple(1, 1));
    return obj.attr("__dlpack__")(py::arg("max_version") = py::make_tuple(1, 1), py::arg("stream") = on);
  } catch (py::error_already_set& e) {
    if (e.matches(PyExc_BufferError))
      throw py::value_error(name + ": cannot be exported (" + std::string(e.what()) +
                            "); a read-only array cannot be updated in place");
    if (!e.matches(PyExc_TypeError)) throw;
  }
  try {
    if (on.is_none()) return obj.attr("__dlpack__")();  // producer predates the versioned protocol
    return obj.attr("__dlpack__")(py::arg("stream") = on);
  } catch (py::error_already_set& e2) {
    if (e2.matches(PyExc_BufferError))
      throw py::value_error(name + ": is read-only or cannot be exported (" + std::string(e2.what()) + ")");
    throw;
  }
}

Imported import_tensor(py::handle obj, const std::string& name, bool writable, bool strided,
                       const CudaStream* stream) {
  py::object cap = export_capsule(obj, name, stream);
  PyObject* c = cap.ptr();
  Imported out;
  const dlpack::Tensor* t = nullptr;
  if (PyCapsule_IsValid(c, "dltensor_versioned")) {
    out.versioned_ = static_cast<dlpack::ManagedTensorVersioned*>(PyCapsule_GetPointer(c, "dltensor_versioned"));
    PyCapsule_SetName(c, "used_dltensor_versioned");
    if (out.versioned_->version.major != 1) {
      const auto major = out.versioned_->version.major;
      throw py::value_error(name + ": DLPack version " + std::to_string(major) + " is not supported (need 1.x)");
    }
    t = &out.versioned_->dl_tensor;
    out.read_only = (out.versioned_->flags & dlpack::kFlagReadOnly) != 0;
  } else if (PyCapsule_IsValid(c, "dltensor")) {
    out.legacy_ = static_cast<dlpack::ManagedTensor*>(PyCapsule_GetPointer(c, "dltensor"));
    PyCapsule_SetName(c, "used_dltensor");
    t = &out.legacy_->dl_tensor;
  } else {
    throw py::type_error(name + ": not an unused DLPack capsule (each capsule can be consumed once)");
  }
  // From here `out` owns the tensor: any throw below runs its deleter once.
  if (t->device.device_type != dlpack::kDLCPU) {
    const std::string why = unsupported_device(name, t->device.device_type, t->device.device_id, stream);
    if (!why.empty()) throw py::value_error(why);
    out.ref.device = Device{Device::cuda, t->device.device_id};
  }
  if (!to_dtype(t->dtype, &out.ref.dtype))
    throw py::type_error(name + ": unsupported dtype " + dtype_desc(t->dtype) +
                         "; expected float32, float64, float16 or bfloat16" +
                         std::string(t->dtype.code == dlpack::kDLComplex ? " (complex parameters: the optimizers that support them "
                                                                           "take their real views, torch.view_as_real)" : ""));
  if (t->ndim < 0 || t->ndim > 64)
    throw py::value_error(name + ": DLPack ndim " + std::to_string(t->ndim) + " is out of range (0 to 64)");
  if (t->ndim > 0 && !t->shape) throw py::value_error(name + ": DLPack shape is NULL");
  {  // sizes first: nothing below multiplies extents that could overflow
    TensorRef probe;
    probe.dtype = out.ref.dtype;
    probe.shape.assign(t->shape, t->shape + t->ndim);
    if (t->strides) probe.strides.assign(t->strides, t->strides + t->ndim);
    probe.data = static_cast<char*>(t->data) + t->byte_offset;
    check_size(probe, name);
  }
  if (!strided && !is_c_contiguous(*t))
    throw py::value_error(name + ": must be C-contiguous (got a strided view); adapprox works on the caller's "
                                 "buffer and never makes a hidden copy");
  if (writable && out.read_only)
    throw py::value_error(name + ": is read-only; the optimizer must update it in place");
  out.ref.shape.assign(t->shape, t->shape + t->ndim);
  if (t->strides && !is_c_contiguous(*t)) out.ref.strides.assign(t->strides, t->strides + t->ndim);
  out.ref.data = static_cast<char*>(t->data) + t->byte_offset;
  return out;
}

}  // namespace adapprox::py_dlpack
