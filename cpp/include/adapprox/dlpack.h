/* DLPack 1.x data structures, declared from the DLPack specification
 * (https://dmlc.github.io/dlpack/latest/c_api.html), prefixed adx_ so that they never clash with
 * a host's own dlpack.h. The layouts are DLPack's: a DLTensor* from any dlpack.h may be cast to
 * adx_DLTensor* (LP64: DLTensor 48 bytes, DLManagedTensor 64, DLManagedTensorVersioned 80).
 * Plain C99; C++ code also gets the names in namespace adapprox::dlpack. No third-party header is
 * vendored. */
#ifndef ADAPPROX_DLPACK_H
#define ADAPPROX_DLPACK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* DLDeviceType codes used by this library (the specification lists more). */
enum {
  ADX_DL_CPU = 1,
  ADX_DL_CUDA = 2,
  ADX_DL_CUDA_HOST = 3,
  ADX_DL_OPENCL = 4,
  ADX_DL_VULKAN = 7,
  ADX_DL_METAL = 8,
  ADX_DL_VPI = 9,
  ADX_DL_ROCM = 10,
  ADX_DL_ROCM_HOST = 11,
  ADX_DL_EXT_DEV = 12,
  ADX_DL_CUDA_MANAGED = 13,
  ADX_DL_ONEAPI = 14,
  ADX_DL_WEBGPU = 15,
  ADX_DL_HEXAGON = 16,
  ADX_DL_MAIA = 17
};

/* DLDataTypeCode */
enum {
  ADX_DL_INT = 0,
  ADX_DL_UINT = 1,
  ADX_DL_FLOAT = 2,
  ADX_DL_OPAQUE_HANDLE = 3,
  ADX_DL_BFLOAT = 4,
  ADX_DL_COMPLEX = 5,
  ADX_DL_BOOL = 6
};

typedef struct {
  int32_t device_type; /* ADX_DL_CPU, ADX_DL_CUDA, ... */
  int32_t device_id;
} adx_DLDevice;

typedef struct {
  uint8_t code; /* ADX_DL_FLOAT, ADX_DL_BFLOAT, ... */
  uint8_t bits;
  uint16_t lanes;
} adx_DLDataType;

typedef struct {
  void* data;
  adx_DLDevice device;
  int32_t ndim;
  adx_DLDataType dtype;
  int64_t* shape;
  int64_t* strides; /* in elements; NULL = compact row-major */
  uint64_t byte_offset;
} adx_DLTensor;

/* DLManagedTensor (legacy; Python capsule name "dltensor") */
typedef struct adx_DLManagedTensor {
  adx_DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(struct adx_DLManagedTensor* self);
} adx_DLManagedTensor;

typedef struct {
  uint32_t major;
  uint32_t minor;
} adx_DLPackVersion;

/* DLManagedTensorVersioned flags */
#define ADX_DLPACK_FLAG_READ_ONLY ((uint64_t)1 << 0)
#define ADX_DLPACK_FLAG_IS_COPIED ((uint64_t)1 << 1)

/* DLManagedTensorVersioned (Python capsule name "dltensor_versioned") */
typedef struct adx_DLManagedTensorVersioned {
  adx_DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(struct adx_DLManagedTensorVersioned* self);
  uint64_t flags;
  adx_DLTensor dl_tensor;
} adx_DLManagedTensorVersioned;

#ifdef __cplusplus
}  // extern "C"

namespace adapprox::dlpack {
using Device = adx_DLDevice;
using DataType = adx_DLDataType;
using Tensor = adx_DLTensor;
using ManagedTensor = adx_DLManagedTensor;
using PackVersion = adx_DLPackVersion;
using ManagedTensorVersioned = adx_DLManagedTensorVersioned;

enum DeviceType : int32_t {
  kDLCPU = ADX_DL_CPU,
  kDLCUDA = ADX_DL_CUDA,
  kDLCUDAHost = ADX_DL_CUDA_HOST,
  kDLOpenCL = ADX_DL_OPENCL,
  kDLVulkan = ADX_DL_VULKAN,
  kDLMetal = ADX_DL_METAL,
  kDLVPI = ADX_DL_VPI,
  kDLROCM = ADX_DL_ROCM,
  kDLROCMHost = ADX_DL_ROCM_HOST,
  kDLExtDev = ADX_DL_EXT_DEV,
  kDLCUDAManaged = ADX_DL_CUDA_MANAGED,
  kDLOneAPI = ADX_DL_ONEAPI,
  kDLWebGPU = ADX_DL_WEBGPU,
  kDLHexagon = ADX_DL_HEXAGON,
  kDLMAIA = ADX_DL_MAIA,
};
enum DataTypeCode : uint8_t {
  kDLInt = ADX_DL_INT,
  kDLUInt = ADX_DL_UINT,
  kDLFloat = ADX_DL_FLOAT,
  kDLOpaqueHandle = ADX_DL_OPAQUE_HANDLE,
  kDLBfloat = ADX_DL_BFLOAT,
  kDLComplex = ADX_DL_COMPLEX,
  kDLBool = ADX_DL_BOOL,
};
constexpr uint64_t kFlagReadOnly = ADX_DLPACK_FLAG_READ_ONLY;
constexpr uint64_t kFlagIsCopied = ADX_DLPACK_FLAG_IS_COPIED;

#if INTPTR_MAX == INT64_MAX
static_assert(sizeof(Tensor) == 48, "DLTensor layout");
static_assert(sizeof(ManagedTensor) == 64, "DLManagedTensor layout");
static_assert(sizeof(ManagedTensorVersioned) == 80, "DLManagedTensorVersioned layout");
#endif
}  // namespace adapprox::dlpack
#endif  /* __cplusplus */

#endif /* ADAPPROX_DLPACK_H */
