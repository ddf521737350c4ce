/* Distributed steps through the C ABI, with threads standing in for ranks.
 *
 * Three "ranks" (threads) each hold a row shard of the same parameters, a 10 x 6 matrix and a
 * bias of 10 (rows split 4 / 3 / 3), and step them with Adapprox and Adafactor through
 * adx_set_communicator. The communicator here is a fake built on a barrier: each rank publishes
 * its buffer, then every rank sums all buffers in rank order (so every rank gets the same bits).
 * A real program plugs MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_DOUBLE, MPI_SUM, comm) into
 * the same two callbacks. The result is checked against one process stepping the whole
 * parameters: the factored statistics are over the whole matrix, so they agree to rounding.
 * Then one rank passes a gradient of the wrong shape: every rank's step fails, nothing changes.
 *
 * Build: see examples/CMakeLists.txt (ctest runs it). Exit status 0 when everything agrees. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapprox/adapprox.h"

#define RANKS 3
#define ROWS 10
#define COLS 6
#define STEPS 5

static const int kFirstRow[RANKS + 1] = {0, 4, 7, 10}; /* rank r holds rows [first[r], first[r+1]) */

/* ---- the fake communicator: threads of one process ---- */
typedef struct {
  pthread_barrier_t barrier;
  const void* published[RANKS];
} Shared;

typedef struct {
  Shared* shared;
  int rank;
} RankCtx;

/* sum over ranks, in rank order, of element i of every published buffer */
static int allreduce_f64(void* ctx, double* data, int64_t count) {
  RankCtx* c = (RankCtx*)ctx;
  double* sum = (double*)calloc((size_t)count + 1, sizeof(double));
  c->shared->published[c->rank] = data;
  pthread_barrier_wait(&c->shared->barrier); /* every rank has published */
  for (int r = 0; r < RANKS; ++r)
    for (int64_t i = 0; i < count; ++i) sum[i] += ((const double*)c->shared->published[r])[i];
  pthread_barrier_wait(&c->shared->barrier); /* every rank has read every buffer */
  memcpy(data, sum, (size_t)count * sizeof(double));
  free(sum);
  return 0;
}

static int allreduce_f32(void* ctx, float* data, int64_t count) {
  RankCtx* c = (RankCtx*)ctx;
  float* sum = (float*)calloc((size_t)count + 1, sizeof(float));
  c->shared->published[c->rank] = data;
  pthread_barrier_wait(&c->shared->barrier);
  for (int r = 0; r < RANKS; ++r)
    for (int64_t i = 0; i < count; ++i) sum[i] += ((const float*)c->shared->published[r])[i];
  pthread_barrier_wait(&c->shared->barrier);
  memcpy(data, sum, (size_t)count * sizeof(float));
  free(sum);
  return 0;
}

/* ---- the training problem ---- */
static float initial(int i, int j) { return 0.1f * (float)sin(1.0 + 0.7 * i + 0.3 * j); }
static float gradient(int step, int i, int j) { return (float)(sin(0.37 * i + 0.11 * j + step) * (1.0 + 0.1 * i)); }

static adx_DLTensor tensor(float* data, int ndim, int64_t* shape) {
  adx_DLTensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.device.device_type = 1; /* kDLCPU */
  t.ndim = ndim;
  t.dtype.code = 2; /* kDLFloat */
  t.dtype.bits = 32;
  t.dtype.lanes = 1;
  t.shape = shape;
  return t;
}

/* One rank (or, with rank < 0, the whole parameters in one process): STEPS steps of `spec`;
 * weight and bias (rows first .. last) are written to w_out and b_out at their global rows. */
typedef struct {
  const char* spec;
  int rank; /* -1: whole */
  Shared* shared;
  float* w_out;
  float* b_out;
  int refuse_ok; /* the refused step behaved */
  int status;
} Job;

static void* run(void* arg) {
  Job* job = (Job*)arg;
  const int r0 = job->rank < 0 ? 0 : kFirstRow[job->rank], r1 = job->rank < 0 ? ROWS : kFirstRow[job->rank + 1];
  const int rows = r1 - r0;
  float w[ROWS * COLS], gw[ROWS * COLS], b[ROWS], gb[ROWS];
  int64_t wshape[2] = {rows, COLS}, bshape[1] = {rows};
  for (int i = 0; i < rows; ++i) {
    b[i] = initial(r0 + i, 99);
    for (int j = 0; j < COLS; ++j) w[i * COLS + j] = initial(r0 + i, j);
  }
  adx_optimizer* opt = NULL;
  job->status = adx_create(job->spec, &opt);
  RankCtx ctx = {job->shared, job->rank};
  adx_communicator comm = {job->rank, RANKS, allreduce_f64, allreduce_f32, &ctx};
  if (job->status == ADX_OK && job->rank >= 0) job->status = adx_set_communicator(opt, &comm);
  for (int t = 0; t < STEPS && job->status == ADX_OK; ++t) {
    for (int i = 0; i < rows; ++i) {
      gb[i] = gradient(t, r0 + i, 99);
      for (int j = 0; j < COLS; ++j) gw[i * COLS + j] = gradient(t, r0 + i, j);
    }
    adx_DLTensor params[2] = {tensor(w, 2, wshape), tensor(b, 1, bshape)};
    adx_DLTensor grads[2] = {tensor(gw, 2, wshape), tensor(gb, 1, bshape)};
    job->status = adx_step(opt, params, grads, 2, -1.0);
    if (job->status != ADX_OK) fprintf(stderr, "rank %d: %s\n", job->rank, adx_last_error());
  }
  for (int i = 0; i < rows; ++i) {
    job->b_out[r0 + i] = b[i];
    for (int j = 0; j < COLS; ++j) job->w_out[(r0 + i) * COLS + j] = w[i * COLS + j];
  }
  if (job->rank >= 0 && job->status == ADX_OK) {
    /* Rank 1 hands in a gradient of the wrong shape: every rank's step is refused. */
    float before[ROWS * COLS];
    memcpy(before, w, sizeof w);
    int64_t bad[2] = {rows, COLS - 1};
    adx_DLTensor params[2] = {tensor(w, 2, wshape), tensor(b, 1, bshape)};
    adx_DLTensor grads[2] = {tensor(gw, 2, job->rank == 1 ? bad : wshape), tensor(gb, 1, bshape)};
    const adx_status st = adx_step(opt, params, grads, 2, -1.0);
    const adx_status want = job->rank == 1 ? ADX_ERR_SHAPE : ADX_ERR_COMM;
    job->refuse_ok = st == want && memcmp(before, w, sizeof w) == 0;
    if (!job->refuse_ok) fprintf(stderr, "rank %d: status %d (want %d): %s\n", job->rank, (int)st, (int)want, adx_last_error());
    else if (job->rank == 0) printf("  refused together: rank 0 was told \"%s\"\n", adx_last_error());
  }
  adx_destroy(opt);
  return NULL;
}

static int compare(const char* spec) {
  float w_whole[ROWS * COLS], b_whole[ROWS], w_shards[ROWS * COLS], b_shards[ROWS];
  Job whole = {spec, -1, NULL, w_whole, b_whole, 1, 0};
  run(&whole);
  Shared shared;
  pthread_barrier_init(&shared.barrier, NULL, RANKS);
  pthread_t threads[RANKS];
  Job jobs[RANKS];
  for (int r = 0; r < RANKS; ++r) {
    jobs[r] = (Job){spec, r, &shared, w_shards, b_shards, 0, 0};
    pthread_create(&threads[r], NULL, run, &jobs[r]);
  }
  int ok = whole.status == ADX_OK;
  for (int r = 0; r < RANKS; ++r) {
    pthread_join(threads[r], NULL);
    ok = ok && jobs[r].status == ADX_OK && jobs[r].refuse_ok;
  }
  pthread_barrier_destroy(&shared.barrier);
  double diff = 0, scale = 0;
  for (int k = 0; k < ROWS * COLS; ++k) {
    diff = fmax(diff, fabs((double)w_whole[k] - w_shards[k]));
    scale = fmax(scale, fabs((double)w_whole[k]));
  }
  for (int k = 0; k < ROWS; ++k) diff = fmax(diff, fabs((double)b_whole[k] - b_shards[k]));
  printf("%-40s %d ranks vs one process: max |difference| %.2e (weights up to %.3f)\n", spec, RANKS, diff, scale);
  return ok && diff <= 1e-5 * scale;
}

int main(void) {
  int ok = compare("adapprox:lr=0.01,rank=2,max_rank=3,tol=0.001");
  ok = compare("adafactor:lr=0.01") && ok;
  printf(ok ? "ok\n" : "FAILED\n");
  return ok ? 0 : 1;
}
