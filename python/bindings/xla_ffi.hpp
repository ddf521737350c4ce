// The part of XLA's FFI C API that a CPU custom-call handler uses, declared from its
// specification (xla/ffi/api/c_api.h, as jax.ffi.include_dir() ships it; API version 0.x). No
// XLA header is needed to build the module: the wheel builds without jaxlib, and XLA checks at
// run time that it can call a handler of the version declared here (the metadata query below).
// Every struct starts with its size, so XLA can tell how many fields a handler knows of.
#pragma once
#include <cstddef>
#include <cstdint>

namespace adapprox::xla_ffi {

constexpr int kApiMajor = 0;
constexpr int kApiMinor = 1;  // the oldest minor version with everything used here

struct ExtensionBase {
  size_t struct_size;
  int32_t type;  // 1: the metadata query
  ExtensionBase* next;
};
constexpr int32_t kExtensionMetadata = 1;

struct ApiVersion {
  size_t struct_size;
  ExtensionBase* extension_start;
  int major_version;
  int minor_version;
};

struct Error;  // opaque; created through Api::error_create, owned by XLA once returned

enum ErrorCode : int32_t { kInvalidArgument = 3, kInternal = 13 };

struct ErrorCreateArgs {
  size_t struct_size;
  ExtensionBase* extension_start;
  const char* message;
  int32_t errc;
};

// Buffer element types (XLA's PrimitiveType numbers).
enum DataType : int32_t { kPred = 1, kS32 = 4, kS64 = 5, kU8 = 6, kF16 = 10, kF32 = 11, kF64 = 12, kBF16 = 16 };

struct Buffer {
  size_t struct_size;
  ExtensionBase* extension_start;
  int32_t dtype;
  void* data;
  int64_t rank;
  int64_t* dims;
};

enum AttrType : int32_t { kAttrArray = 1, kAttrDictionary = 2, kAttrScalar = 3, kAttrString = 4 };

struct ByteSpan {
  const char* ptr;
  size_t len;
};

struct Scalar {
  int32_t dtype;
  void* value;
};

struct Args {
  size_t struct_size;
  ExtensionBase* extension_start;
  int64_t size;
  int32_t* types;  // 1: buffer
  void** args;
};

struct Rets {
  size_t struct_size;
  ExtensionBase* extension_start;
  int64_t size;
  int32_t* types;  // 1: buffer
  void** rets;
};

struct Attrs {  // sorted by name
  size_t struct_size;
  ExtensionBase* extension_start;
  int64_t size;
  int32_t* types;
  ByteSpan** names;
  void** attrs;
};

struct Api;

enum Stage : int32_t { kInstantiate = 0, kPrepare = 1, kInitialize = 2, kExecute = 3 };

struct CallFrame {
  size_t struct_size;
  ExtensionBase* extension_start;
  const Api* api;
  void* ctx;
  int32_t stage;
  Args args;
  Rets rets;
  Attrs attrs;
};

// Only the first function of the table is used.
using ErrorCreateFn = Error*(ErrorCreateArgs* args);
struct Api {
  size_t struct_size;
  ExtensionBase* extension_start;
  ApiVersion api_version;
  const void* internal_api;
  ErrorCreateFn* error_create;
};

struct TypeId {
  int64_t type_id;
};

struct Metadata {
  size_t struct_size;
  ApiVersion api_version;
  uint32_t traits;
  TypeId state_type_id;  // API 0.3 on; present when struct_size says so
};

struct MetadataExtension {
  ExtensionBase extension_base;
  Metadata* metadata;
};

using Handler = Error*(CallFrame* frame);

// Sizes as the specification defines them: up to the end of the last field.
constexpr size_t kBufferSize = offsetof(Buffer, dims) + sizeof(int64_t*);
constexpr size_t kMetadataSizeV1 = offsetof(Metadata, traits) + sizeof(uint32_t);
constexpr size_t kMetadataSizeV3 = offsetof(Metadata, state_type_id) + sizeof(TypeId);
constexpr size_t kApiVersionSize = offsetof(ApiVersion, minor_version) + sizeof(int);
constexpr size_t kErrorCreateArgsSize = offsetof(ErrorCreateArgs, errc) + sizeof(int32_t);

}  // namespace adapprox::xla_ffi
