/* adapprox C ABI: every optimizer of the library, from C, C++, Rust, Julia, ... (C99).
 *
 *   adx_optimizer* opt = NULL;
 *   if (adx_create("adapprox:lr=1e-3,rank=4,tol=1e-2,beta1=0.9", &opt) != ADX_OK)
 *       fprintf(stderr, "%s\n", adx_last_error());
 *   adx_step(opt, params, grads, n, -1.0);   // parameters are updated in place
 *   adx_destroy(opt);
 *
 * Spec grammar (one for every optimizer):  NAME [":" KEY "=" NUMBER ("," KEY "=" NUMBER)*]
 * NAME is "adapprox", "adafactor", "adagram", "fullmatrixadagrad" or an elementwise optimizer ("adam", "adamw", "nadam",
 * "rmsprop", "adagrad", "sgd", "signsgd", as built); booleans are 0/1. adx_spec_keys() lists the
 * keys of a name with their defaults. Adafactor: mode=0 is torch.optim.Adafactor (the default),
 * mode=1 the paper's algorithm (relative_step, scale_parameter, beta1 > 0 for a first moment);
 * eps1_auto=1 takes eps1 as the machine epsilon of the first parameter's dtype (torch's None),
 * and giving eps1 alone turns it off (in paper mode an unset eps1 is the paper's 1e-30). Errors are status codes; adx_last_error() gives this thread's
 * message for the last failed call. A failed call changes no parameter and no state. No C++
 * exception ever crosses this ABI.
 *
 * Versions: ADAPPROX_VERSION_* (version.h) say which headers a program was compiled with, and
 * adx_version()/adx_abi_version() what library it runs with. While the major version is 0, every
 * minor version may change the ABI: the shared library's SONAME is libadapprox.so.0.MINOR and
 * the CMake package accepts only the same MAJOR.MINOR; from 1.0 on, the SONAME is
 * libadapprox.so.MAJOR and any later MINOR of the same MAJOR is accepted.
 *
 * Threads: every function may be called from any thread. Calls on one handle are serialised (a
 * lock per handle): two threads stepping one handle take turns, and no update is lost. Separate
 * handles share nothing and never wait for each other. adx_destroy must not race with other calls
 * on the same handle (as free() must not).
 *
 * Tensors are DLPack DLTensors (adx_DLTensor, declared layout-compatible in adapprox/dlpack.h; a
 * DLTensor* from any dlpack.h may be passed by casting): CPU, C-contiguous (strides NULL or compact), float32,
 * float64, float16 or bfloat16, parameter and gradient of the same shape and dtype.
 */
#ifndef ADAPPROX_H
#define ADAPPROX_H

#include <stddef.h>
#include <stdint.h>

#include "adapprox/dlpack.h"
#include "adapprox/export.h"
#include "adapprox/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  ADX_OK = 0,
  ADX_ERR_NULL = 1,        /* a required pointer argument is NULL */
  ADX_ERR_SPEC = 2,        /* malformed spec, unknown optimizer or unknown key */
  ADX_ERR_VALUE = 3,       /* a hyperparameter or argument out of range */
  ADX_ERR_DTYPE = 4,       /* unsupported dtype, or parameter/gradient dtypes differ */
  ADX_ERR_SHAPE = 5,       /* shapes differ, non-contiguous, or parameter list changed */
  ADX_ERR_DEVICE = 6,      /* an unsupported device, tensors on several devices, or no CUDA here */
  ADX_ERR_STATE = 7,       /* truncated, corrupt or mismatched state buffer */
  ADX_ERR_BUFFER_SIZE = 8, /* caller's buffer is too small (the needed size is returned) */
  ADX_ERR_INTERNAL = 9,    /* out of memory or an unexpected failure */
  ADX_ERR_INTERRUPTED = 10, /* the interrupt callback asked to stop (adx_set_interrupt) */
  ADX_ERR_COMM = 11         /* a collective failed, or another rank refused the step (adx_set_communicator) */
} adx_status;

typedef struct adx_optimizer adx_optimizer;

/* Library version "MAJOR.MINOR.PATCH" and the ABI version (bumped on incompatible changes). */
ADAPPROX_API const char* adx_version(void);
ADAPPROX_API int adx_abi_version(void);

/* This thread's message for its last failed call ("" if none). Valid until its next call. */
ADAPPROX_API const char* adx_last_error(void);
/* The name of a status code ("ADX_OK", "ADX_ERR_NULL", ...; "unknown status" for others). The
 * string is static. */
ADAPPROX_API const char* adx_status_string(adx_status status);

/* Threads the library's CPU work uses, for every handle (default: the environment variable
 * ADAPPROX_NUM_THREADS, else the hardware's thread count). n from 1 to 1024, else ADX_ERR_VALUE.
 * Results do not depend on it: work is split into the same chunks for any count. */
ADAPPROX_API adx_status adx_set_num_threads(int n);
ADAPPROX_API int adx_num_threads(void);

ADAPPROX_API adx_status adx_create(const char* spec, adx_optimizer** out);
ADAPPROX_API void adx_destroy(adx_optimizer* opt); /* NULL is fine */

/* The canonical spec of an optimizer: its name and every key with its current value. Writes at
 * most `capacity` bytes including the terminating NUL; *needed gets the full size. */
ADAPPROX_API adx_status adx_spec(const adx_optimizer* opt, char* buf, size_t capacity, size_t* needed);
/* The keys of optimizer `name` with their defaults, as a spec string. */
ADAPPROX_API adx_status adx_spec_keys(const char* name, char* buf, size_t capacity, size_t* needed);

/* One step over `count` parameters (updated in place) and their gradients. lr >= 0 overrides
 * the spec's learning rate for this step (for schedules); lr < 0 keeps it. The list of
 * parameters (count, shapes, dtypes) must stay the same from step to step. */
ADAPPROX_API adx_status adx_step(adx_optimizer* opt, const adx_DLTensor* params, const adx_DLTensor* grads, size_t count,
                    double lr);

/* adx_step for CUDA tensors (device_type 2, kDLCUDA): every kernel is queued on `stream` (a
 * cudaStream_t; NULL: the legacy default stream) and not waited for. The handle keeps each
 * parameter's state on that parameter's device (scalar state on the host); state loaded with
 * adx_state_load moves there at the next step, adx_state_save copies it back. All parameters of
 * one call are on one device. A build without the CUDA backend refuses CUDA tensors with
 * ADX_ERR_DEVICE. adx_step(...) is adx_step_on_stream(..., NULL). */
ADAPPROX_API adx_status adx_step_on_stream(adx_optimizer* opt, const adx_DLTensor* params, const adx_DLTensor* grads, size_t count,
                              double lr, void* stream);

/* A stop request for long steps (a SIGINT handler's flag, a deadline): `poll(ctx)` is called on
 * the thread running adx_step, at most every 20 ms, between units of work; nonzero stops the step
 * with ADX_ERR_INTERRUPTED. A stopped step is atomic per parameter: each is either stepped in full
 * (its state and step count advanced) or untouched. poll = NULL removes it. */
ADAPPROX_API adx_status adx_set_interrupt(adx_optimizer* opt, int (*poll)(void* ctx), void* ctx);

/* A communicator for distributed steps (plug in MPI_Allreduce, NCCL, or your own): each
 * allreduce_sum_* sums `count` numbers element-wise over all `size` ranks, in place, leaves the
 * same bits on every rank, and returns 0 (nonzero: failed; the step then fails with ADX_ERR_COMM).
 * The library calls them only from the thread running adx_step, in the same order on every rank. */
typedef struct adx_communicator {
  int rank; /* 0 .. size - 1 */
  int size;
  int (*allreduce_sum_f64)(void* ctx, double* data, int64_t count);
  int (*allreduce_sum_f32)(void* ctx, float* data, int64_t count);
  void* ctx;
} adx_communicator;

/* Distributed steps: with a communicator set, every parameter with at least one dimension is this
 * rank's shard of a larger tensor, split by rows of its first dimension over ranks in rank order
 * (a shard may have no rows). Factored optimizers (adafactor, adapprox) then compute their
 * statistics over the whole tensor, exactly, communicating O((n + rank) rank) numbers per matrix;
 * elementwise ones step each shard alone. Every rank steps its shards of the same parameters
 * together; a step that one rank refuses (bad input there) fails on every rank before anything
 * is written. The struct is copied; comm = NULL returns to whole parameters. */
ADAPPROX_API adx_status adx_set_communicator(adx_optimizer* opt, const adx_communicator* comm);

/* State as bytes: a versioned, little-endian, checksummed format, the same that Python's
 * save_native_state()/load_native_state() read and write. adx_state_save writes *written bytes
 * if capacity suffices, else returns ADX_ERR_BUFFER_SIZE with the needed size in *written.
 * Loading restores the saved hyperparameters with the state (as torch's load_state_dict restores
 * param_groups, and as Python's load_native_state does); adx_state_load_ex with
 * ADX_LOAD_KEEP_HYPERPARAMETERS keeps the handle's own instead (the state must then fit them,
 * else ADX_ERR_STATE). A failed load changes nothing. */
ADAPPROX_API adx_status adx_state_size(const adx_optimizer* opt, size_t* bytes);
ADAPPROX_API adx_status adx_state_save(const adx_optimizer* opt, void* buf, size_t capacity, size_t* written);
ADAPPROX_API adx_status adx_state_load(adx_optimizer* opt, const void* buf, size_t size);
#define ADX_LOAD_KEEP_HYPERPARAMETERS 1u
ADAPPROX_API adx_status adx_state_load_ex(adx_optimizer* opt, const void* buf, size_t size, unsigned flags);

/* Bytes of optimizer state held now, and what AdamW would hold for the same parameters. */
ADAPPROX_API adx_status adx_memory_report(const adx_optimizer* opt, size_t* state_bytes, size_t* adamw_bytes);

#ifdef __cplusplus
}
#endif

#endif /* ADAPPROX_H */
