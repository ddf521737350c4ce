// DLPack 1.x data structures, declared from the DLPack specification
// (https://dmlc.github.io/dlpack/latest/c_api.html). No third-party header is vendored;
// the layout is pinned by static_asserts below (LP64: DLTensor 48 bytes,
// DLManagedTensor 64, DLManagedTensorVersioned 80).
#pragma once
#include <cstddef>
#include <cstdint>

namespace adapprox::dlpack {

enum DeviceType : int32_t {
  kDLCPU = 1,
  kDLCUDA = 2,
  kDLCUDAHost = 3,
  kDLOpenCL = 4,
  kDLVulkan = 7,
  kDLMetal = 8,
  kDLVPI = 9,
  kDLROCM = 10,
  kDLROCMHost = 11,
  kDLExtDev = 12,
  kDLCUDAManaged = 13,
  kDLOneAPI = 14,
  kDLWebGPU = 15,
  kDLHexagon = 16,
  kDLMAIA = 17,
};

struct Device {
  int32_t device_type;
  int32_t device_id;
};

enum DataTypeCode : uint8_t {
  kDLInt = 0,
  kDLUInt = 1,
  kDLFloat = 2,
  kDLOpaqueHandle = 3,
  kDLBfloat = 4,
  kDLComplex = 5,
  kDLBool = 6,
};

struct DataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};

struct Tensor {  // DLTensor
  void* data;
  Device device;
  int32_t ndim;
  DataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; NULL means compact row-major
  uint64_t byte_offset;
};

struct ManagedTensor {  // DLManagedTensor (legacy, capsule name "dltensor")
  Tensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(ManagedTensor* self);
};

struct PackVersion {
  uint32_t major;
  uint32_t minor;
};

constexpr uint64_t kFlagReadOnly = 1ull << 0;
constexpr uint64_t kFlagIsCopied = 1ull << 1;

struct ManagedTensorVersioned {  // DLManagedTensorVersioned ("dltensor_versioned")
  PackVersion version;
  void* manager_ctx;
  void (*deleter)(ManagedTensorVersioned* self);
  uint64_t flags;
  Tensor dl_tensor;
};

#if INTPTR_MAX == INT64_MAX
static_assert(sizeof(Tensor) == 48, "DLTensor layout");
static_assert(sizeof(ManagedTensor) == 64, "DLManagedTensor layout");
static_assert(sizeof(ManagedTensorVersioned) == 80, "DLManagedTensorVersioned layout");
#endif

}  // namespace adapprox::dlpack
