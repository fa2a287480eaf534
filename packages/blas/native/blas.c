/*
 * @pangea/blas native part: single-precision matrix products on the
 * machine's OpenBLAS, exposed to Node through N-API (ABI-stable, so one
 * build works for every Node version >= 18).
 *
 * Every operand is a Float32Array plus an element offset, so callers can
 * pass one view of a WebAssembly heap (TensorFlow.js's wasm backend) or
 * separate arrays (serving) without copying. Every extent is checked
 * against its array before BLAS touches memory: a bad call is a RangeError,
 * never a write out of bounds.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <cblas.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include "id-hash.h"

/* openblas_set_num_threads & co. are declared by OpenBLAS's cblas.h; declared
 * again here so a cblas.h from another vendor still compiles (link fails
 * clearly instead). */
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);
extern char *openblas_get_config(void);

static double total_seconds = 0;
static double total_flops = 0;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, "PANGEA_BLAS_ERR_NAPI", "N-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

/* A TypeError (PANGEA_BLAS_ERR_ARG: a wrong kind of argument) or RangeError
 * (PANGEA_BLAS_ERR_RANGE: an extent or index out of bounds) with a formatted message. */
static void throw_formatted(napi_env env, int range, const char *fmt, va_list ap) {
  char msg[256];
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (range) napi_throw_range_error(env, "PANGEA_BLAS_ERR_RANGE", msg);
  else napi_throw_type_error(env, "PANGEA_BLAS_ERR_ARG", msg);
}

__attribute__((format(printf, 2, 3))) static void throw_arg(napi_env env, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  throw_formatted(env, 0, fmt, ap);
  va_end(ap);
}

__attribute__((format(printf, 2, 3))) static void throw_range(napi_env env, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  throw_formatted(env, 1, fmt, ap);
  va_end(ap);
}

static int get_int(napi_env env, napi_value v, const char *name, int64_t *out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    throw_arg(env, "%s: expected an integer", name);
    return 0;
  }
  return 1;
}

/* A typed array of the wanted element type, as a pointer to its first element and its length. */
static int get_typed(napi_env env, napi_value v, const char *name, napi_typedarray_type want, const char *what, void **data, size_t *length) {
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  bool is_typed = false;
  napi_is_typedarray(env, v, &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, v, &type, length, data, &buffer, &offset) != napi_ok || type != want) {
    throw_arg(env, "%s: expected %s", name, what);
    return 0;
  }
  return 1;
}

static int get_f32(napi_env env, napi_value v, const char *name, float **data, size_t *length) {
  return get_typed(env, v, name, napi_float32_array, "a Float32Array", (void **)data, length);
}

static int get_i32(napi_env env, napi_value v, const char *name, int32_t **data, size_t *length) {
  return get_typed(env, v, name, napi_int32_array, "an Int32Array", (void **)data, length);
}

/* Elements a row-major matrix of `rows` x `cols` spans at leading dimension ld. */
static int64_t span(int64_t rows, int64_t cols, int64_t ld) {
  if (rows == 0 || cols == 0) return 0;
  /* Extents come from JavaScript as any int64: an overflow saturates, and in_bounds then refuses it. */
  int64_t n;
  if (__builtin_mul_overflow(rows - 1, ld, &n) || __builtin_add_overflow(n, cols, &n)) return INT64_MAX;
  return n;
}

static int in_bounds(napi_env env, const char *name, int64_t offset, int64_t batch, int64_t stride, int64_t extent, size_t length) {
  int64_t steps = 0, last = 0;
  /* Checked arithmetic: extents near 2^63 would otherwise wrap to a small `last` and pass. */
  if (offset < 0 || stride < 0 || extent < 0 || batch < 0 || __builtin_mul_overflow(batch > 0 ? batch - 1 : 0, stride, &steps) ||
      __builtin_add_overflow(offset, steps, &last) || __builtin_add_overflow(last, extent, &last)) {
    throw_range(env, "%s: offset %lld, %lld x stride %lld, extent %lld are outside its array of %zu", name, (long long)offset, (long long)batch, (long long)stride,
                (long long)extent, length);
    return 0;
  }
  if (last > (int64_t)length) {
    throw_range(env, "%s: elements %lld..%lld are outside its array of %zu", name, (long long)offset, (long long)last, length);
    return 0;
  }
  return 1;
}

/* Reads a call's arguments into argv (room for `want`); unless there are
 * exactly `want`, throws a TypeError with `message` and returns 0. */
static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *message) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, "PANGEA_BLAS_ERR_NAPI", "N-API call failed: napi_get_cb_info");
    return 0;
  }
  if (argc != want) {
    napi_throw_type_error(env, "PANGEA_BLAS_ERR_ARG", message);
    return 0;
  }
  return 1;
}

/* Four-lane vectors (SSE2 on x86-64, NEON on arm64: the baseline, so the
 * addon runs on any CPU of the architecture it was built for). The scalar
 * loops below do not vectorise: a float sum may not be reordered without
 * -ffast-math, and D, the embedding width, is only known at run time. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f load4(const float *p) {
  v4f v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline void store4(float *p, v4f v) { memcpy(p, &v, sizeof v); }

/* max(x, 0) in place, four lanes at a time as a bit mask (a branch per element
 * mispredicts on activations' signs: 0.9 -> ~0.1 ns per value); NaN becomes 0. */
static void relu_in_place(float *c, int64_t n) {
  const v4f zero = {0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const v4f v = load4(c + j);
    store4(c + j, (v4f)((v4i)v & (v > zero)));
  }
  for (; j < n; j++) c[j] = c[j] > 0.0f ? c[j] : 0.0f;
}

/*
 * gemm(transA, transB, M, N, K, A, aOff, B, bOff, C, cOff, batch, strideA,
 *      strideB, strideC, bias, biasOff, biasPerRow, relu)
 * For each batch entry i: C_i = op(A_i) op(B_i) (+ bias) (then max(0, .)),
 * row-major, op(A) M x K, op(B) K x N, C M x N. bias: a Float32Array of N
 * (broadcast over rows) or M x N (biasPerRow = 1), or null.
 */
static napi_value gemm(napi_env env, napi_callback_info info) {
  napi_value argv[19];
  if (!get_args(env, info, 19, argv, "gemm: expected 19 arguments")) return NULL;
  bool ta, tb, relu;
  CHECK(napi_get_value_bool(env, argv[0], &ta));
  CHECK(napi_get_value_bool(env, argv[1], &tb));
  int64_t M, N, K, aOff, bOff, cOff, batch, sA, sB, sC, biasOff, biasPerRow;
  if (!get_int(env, argv[2], "M", &M) || !get_int(env, argv[3], "N", &N) || !get_int(env, argv[4], "K", &K)) return NULL;
  float *A, *B, *C, *bias = NULL;
  size_t lenA, lenB, lenC, lenBias = 0;
  if (!get_f32(env, argv[5], "A", &A, &lenA) || !get_int(env, argv[6], "aOff", &aOff)) return NULL;
  if (!get_f32(env, argv[7], "B", &B, &lenB) || !get_int(env, argv[8], "bOff", &bOff)) return NULL;
  if (!get_f32(env, argv[9], "C", &C, &lenC) || !get_int(env, argv[10], "cOff", &cOff)) return NULL;
  if (!get_int(env, argv[11], "batch", &batch) || !get_int(env, argv[12], "strideA", &sA) ||
      !get_int(env, argv[13], "strideB", &sB) || !get_int(env, argv[14], "strideC", &sC)) return NULL;
  napi_valuetype biasType;
  CHECK(napi_typeof(env, argv[15], &biasType));
  if (biasType != napi_null && biasType != napi_undefined && !get_f32(env, argv[15], "bias", &bias, &lenBias)) return NULL;
  if (!get_int(env, argv[16], "biasOff", &biasOff) || !get_int(env, argv[17], "biasPerRow", &biasPerRow)) return NULL;
  CHECK(napi_get_value_bool(env, argv[18], &relu));
  /* BLAS takes int extents; a batch beyond int over a zero stride would only spin. */
  if (M < 0 || N < 0 || K < 0 || batch < 1 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || batch > INT32_MAX) {
    napi_throw_range_error(env, "PANGEA_BLAS_ERR_RANGE", "gemm: M, N, K must be 0..2^31-1 and batch 1..2^31-1");
    return NULL;
  }
  if (M == 0 || N == 0) return NULL; /* an empty product: nothing to write */
  int64_t lda = ta ? M : K, ldb = tb ? K : N;
  if (!in_bounds(env, "A", aOff, batch, sA, ta ? span(K, M, lda) : span(M, K, lda), lenA)) return NULL;
  if (!in_bounds(env, "B", bOff, batch, sB, tb ? span(N, K, ldb) : span(K, N, ldb), lenB)) return NULL;
  if (!in_bounds(env, "C", cOff, batch, sC, span(M, N, N), lenC)) return NULL;
  if (bias && !in_bounds(env, "bias", biasOff, 1, 0, biasPerRow ? M * N : N, lenBias)) return NULL;

  double t0 = now_seconds();
  for (int64_t i = 0; i < batch; i++) {
    const float *a = A + aOff + i * sA;
    const float *b = B + bOff + i * sB;
    float *c = C + cOff + i * sC;
    float beta = 0.0f;
    if (bias) {
      /* Start C from the bias and let BLAS accumulate onto it (beta = 1). */
      const float *src = bias + biasOff;
      for (int64_t r = 0; r < M; r++) memcpy(c + r * N, src + (biasPerRow ? r * N : 0), (size_t)N * sizeof(float));
      beta = 1.0f;
    }
    if (K == 0) {
      if (!bias) memset(c, 0, (size_t)(M * N) * sizeof(float));
    } else if (M > 0 && N > 0) {
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, a,
                  (int)lda, b, (int)ldb, beta, c, (int)N);
    }
    if (relu) relu_in_place(c, M * N);
  }
  total_seconds += now_seconds() - t0;
  total_flops += 2.0 * (double)M * (double)N * (double)K * (double)batch;
  return NULL;
}

/*
 * Embedding pooling and its gradient, the trainer's two row-wise copies
 * (DLRM's sum pooling over a batch's values):
 *   gatherRows(src, D, rowOf, cellOf|null, dst):      dst[cellOf[v]] += src[rowOf[v]]
 *   scatterAddRows(src, D, cellOf|null, rowOf, dst):  dst[rowOf[v]] += src[cellOf[v]]
 * (rows of D floats; cellOf null means value v is cell v). dst is not
 * cleared first. Every index is checked before any row is touched.
 */
static napi_value rows_op(napi_env env, napi_callback_info info, int scatter) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv, "expected 5 arguments")) return NULL;
  float *src, *dst;
  int32_t *rowOf, *cellOf = NULL;
  size_t lenSrc, lenDst, nRow, nCell = 0;
  int64_t D;
  if (!get_f32(env, argv[0], "src", &src, &lenSrc) || !get_int(env, argv[1], "D", &D) || !get_i32(env, argv[scatter ? 3 : 2], "rowOf", &rowOf, &nRow) ||
      !get_f32(env, argv[4], "dst", &dst, &lenDst)) return NULL;
  napi_valuetype t;
  CHECK(napi_typeof(env, argv[scatter ? 2 : 3], &t));
  if (t != napi_null && t != napi_undefined && !get_i32(env, argv[scatter ? 2 : 3], "cellOf", &cellOf, &nCell)) return NULL;
  if (D < 1 || (cellOf && nCell < nRow)) {
    napi_throw_range_error(env, "PANGEA_BLAS_ERR_RANGE", "D must be >= 1 and cellOf as long as rowOf");
    return NULL;
  }
  size_t rows = (scatter ? lenDst : lenSrc) / (size_t)D;
  size_t cells = (scatter ? lenSrc : lenDst) / (size_t)D;
  for (size_t v = 0; v < nRow; v++) {
    size_t c = cellOf ? (size_t)(uint32_t)cellOf[v] : v;
    if ((size_t)(uint32_t)rowOf[v] >= rows || c >= cells) {
      throw_range(env, "value %zu: row %d of %zu or cell %zu of %zu is out of range", v, rowOf[v], rows, c, cells);
      return NULL;
    }
  }
  for (size_t v = 0; v < nRow; v++) {
    /* Read once and checked again: dst may share memory with rowOf or cellOf, and an add may have changed them. */
    const size_t c = cellOf ? (size_t)(uint32_t)cellOf[v] : v, r = (size_t)(uint32_t)rowOf[v];
    if (r >= rows || c >= cells) {
      throw_range(env, "value %zu: row %zu of %zu or cell %zu of %zu is out of range", v, r, rows, c, cells);
      return NULL;
    }
    float *to = scatter ? dst + r * D : dst + c * D;
    const float *from = scatter ? src + c * D : src + r * D;
    for (int64_t k = 0; k < D; k++) to[k] += from[k];
  }
  return NULL;
}


/*
 * copyColumns(wide, wideCols, from, widths, narrow, narrowCols, narrowFrom, take, B, back):
 * for each of B rows, slot s's take[s] columns starting `from` into its
 * widths[s]-wide block (the blocks side by side from column `from` of the
 * row's wideCols) go to the narrow matrix (narrowCols a row, side by side
 * from narrowFrom), or back (back = true: narrow into wide). A memcpy per
 * block: the embedding columns an architecture takes apart (first-order
 * weights, vectors) are a few floats each, B x S blocks a step. Every
 * extent is checked before a byte is copied.
 */
static napi_value copy_columns(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  if (!get_args(env, info, 10, argv, "expected 10 arguments")) return NULL;
  float *wide, *narrow;
  int32_t *widths, *take;
  size_t lenWide, lenNarrow, nWidths, nTake;
  int64_t wideCols, from, narrowCols, narrowFrom, B;
  bool back;
  if (!get_f32(env, argv[0], "wide", &wide, &lenWide) || !get_int(env, argv[1], "wideCols", &wideCols) || !get_int(env, argv[2], "from", &from) ||
      !get_i32(env, argv[3], "widths", &widths, &nWidths) || !get_f32(env, argv[4], "narrow", &narrow, &lenNarrow) ||
      !get_int(env, argv[5], "narrowCols", &narrowCols) || !get_int(env, argv[6], "narrowFrom", &narrowFrom) ||
      !get_i32(env, argv[7], "take", &take, &nTake) || !get_int(env, argv[8], "B", &B)) return NULL;
  if (napi_get_value_bool(env, argv[9], &back) != napi_ok) {
    throw_arg(env, "back: expected a boolean");
    return NULL;
  }
  /* Each extent within 0..INT32_MAX: the sums below (at most 2^31 terms of 2^31) then cannot overflow. */
  if (nTake != nWidths || nTake > INT32_MAX || wideCols < 0 || from < 0 || narrowCols < 0 || narrowFrom < 0 || B < 0 || wideCols > INT32_MAX || from > INT32_MAX ||
      narrowCols > INT32_MAX || narrowFrom > INT32_MAX || B > INT32_MAX) {
    napi_throw_range_error(env, "PANGEA_BLAS_ERR_RANGE", "copyColumns: take and widths must have one entry per slot, and extents be 0..2^31-1");
    return NULL;
  }
  /* The lists copied before they are checked: wide or narrow may share their memory, and the copy loop must use what
   * was checked. */
  int32_t *lists = malloc((nTake ? nTake : 1) * 2 * sizeof(int32_t));
  if (!lists) {
    napi_throw_error(env, "PANGEA_BLAS_ERR_NAPI", "out of memory");
    return NULL;
  }
  memcpy(lists, widths, nTake * sizeof(int32_t));
  memcpy(lists + nTake, take, nTake * sizeof(int32_t));
  widths = lists;
  take = lists + nTake;
  /* One past the last column a row touches, on either side. */
  int64_t at = from, wideEnd = from, narrowEnd = narrowFrom;
  for (size_t s = 0; s < nTake; s++) {
    if (take[s] < 0 || widths[s] < 0 || take[s] > widths[s]) {
      throw_range(env, "copyColumns: slot %zu takes %d of %d columns", s, take[s], widths[s]);
      free(lists);
      return NULL;
    }
    if (at + take[s] > wideEnd) wideEnd = at + take[s];
    at += widths[s];
    narrowEnd += take[s];
  }
  if (B > 0 && nTake > 0 && (!in_bounds(env, "wide", 0, B, wideCols, wideEnd, lenWide) || !in_bounds(env, "narrow", 0, B, narrowCols, narrowEnd, lenNarrow))) {
    free(lists);
    return NULL;
  }
  /* A one-float block (a slot's first-order weight) is an assignment, 2.5x faster than a memmove call each (measured:
   * 2048 x 26 blocks 0.34 -> 0.13 ms); it needs the arrays apart (they are different tensors; memmove otherwise). Wider
   * blocks stay on memmove: a loop or a fixed-size memcpy of 16 floats measured 2-4x slower than it here. */
  const float *wideLast = wide + (B > 0 ? (size_t)(B - 1) * (size_t)wideCols + (size_t)wideEnd : 0);
  const float *narrowLast = narrow + (B > 0 ? (size_t)(B - 1) * (size_t)narrowCols + (size_t)narrowEnd : 0);
  const int apart = wideLast <= narrow || narrowLast <= wide;
  for (int64_t r = 0; r < B; r++) {
    float *w = wide + r * wideCols + from;
    float *n = narrow + r * narrowCols + narrowFrom;
    for (size_t s = 0; s < nTake; s++) {
      const int32_t t = take[s];
      float *to = back ? w : n;
      const float *src = back ? n : w;
      if (apart && t == 1) *to = *src;
      else if (back)
        memmove(w, n, (size_t)t * sizeof(float));
      else
        memmove(n, w, (size_t)t * sizeof(float));
      w += widths[s];
      n += t;
    }
  }
  free(lists);
  return NULL;
}

/*
 * fmForward(x, B, S, D, y) and fmGradient(x, g, B, S, D, dx): DeepFM's
 * second-order term over B rows of S slot vectors of width D (x [B, S*D]):
 * y[b] = 0.5 * sum_k ((sum_s x_sk)^2 - sum_s x_sk^2), and its gradient
 * dx_sk = g[b] * (sum_s' x_s'k - x_sk). The same operations in the same order
 * as the trainer's JavaScript loops (services/trainer, tf-ops.ts: column sums
 * and squares in double, s-major; built with -ffp-contract=off), so the bits
 * are the same. A row's values are all read before its output is written, as
 * there, so an output sharing memory with an input behaves the same too.
 */
static napi_value fm_op(napi_env env, napi_callback_info info, int grad) {
  const size_t argc = grad ? 6 : 5;
  napi_value argv[6];
  if (!get_args(env, info, argc, argv, grad ? "fmGradient: expected 6 arguments" : "fmForward: expected 5 arguments")) return NULL;
  float *x, *g = NULL, *out;
  size_t lenX, lenG = 0, lenOut;
  int64_t B, S, D;
  const size_t at = grad ? 2 : 1;
  if (!get_f32(env, argv[0], "x", &x, &lenX) || (grad && !get_f32(env, argv[1], "g", &g, &lenG)) || !get_int(env, argv[at], "B", &B) ||
      !get_int(env, argv[at + 1], "S", &S) || !get_int(env, argv[at + 2], "D", &D) || !get_f32(env, argv[at + 3], grad ? "dx" : "y", &out, &lenOut)) return NULL;
  if (B < 0 || S < 0 || D < 0 || B > INT32_MAX || S > INT32_MAX || D > INT32_MAX) {
    throw_range(env, "%s: B, S and D must be 0..2^31-1", grad ? "fmGradient" : "fmForward");
    return NULL;
  }
  /* At most 2^31 x 2^31 x 2^31 would overflow: checked. */
  int64_t width, cells;
  if (__builtin_mul_overflow(S, D, &width) || __builtin_mul_overflow(B, width, &cells)) {
    throw_range(env, "%s: B x S x D overflows", grad ? "fmGradient" : "fmForward");
    return NULL;
  }
  if ((uint64_t)cells > lenX) {
    throw_range(env, "x: %lld x %lld x %lld values are more than its %zu", (long long)B, (long long)S, (long long)D, lenX);
    return NULL;
  }
  if (grad && (uint64_t)B > lenG) {
    throw_range(env, "g: %lld values are more than its %zu", (long long)B, lenG);
    return NULL;
  }
  if ((uint64_t)(grad ? cells : B) > lenOut) {
    throw_range(env, "%s: %lld values are more than its %zu", grad ? "dx" : "y", (long long)(grad ? cells : B), lenOut);
    return NULL;
  }
  if (B == 0 || width == 0) {
    /* As the loop: -squares is -0, and with D > 0 adding the columns' 0 sums makes it +0. */
    if (!grad)
      for (int64_t b = 0; b < B; b++) out[b] = D == 0 ? -0.0f : 0.0f;
    return NULL;
  }
  double stack[64];
  double *sums = D <= 64 ? stack : malloc((size_t)D * sizeof(double));
  if (!sums) {
    napi_throw_error(env, "PANGEA_BLAS_ERR_NAPI", "out of memory");
    return NULL;
  }
  /* Forward: each row's squares are one chain of additions, s-major as the JavaScript adds them; four rows' chains run
   * side by side (each in its own order), where one chain at a time waited on every addition's latency. A group's
   * outputs are written once all four rows are read, so only when y is apart from x (else one row at a time). */
  const int apart = grad || (out + B <= x || x + cells <= out);
  int64_t b = 0;
  if (!grad && apart) {
    for (; b + 4 <= B; b += 4) {
      const float *r0 = x + b * width, *r1 = r0 + width, *r2 = r1 + width, *r3 = r2 + width;
      double q0 = 0.0, q1 = 0.0, q2 = 0.0, q3 = 0.0;
      for (int64_t i = 0; i < width; i++) {
        q0 += (double)r0[i] * (double)r0[i];
        q1 += (double)r1[i] * (double)r1[i];
        q2 += (double)r2[i] * (double)r2[i];
        q3 += (double)r3[i] * (double)r3[i];
      }
      const double q[4] = {q0, q1, q2, q3};
      float y4[4];
      for (int r = 0; r < 4; r++) {
        const float *row = x + (b + r) * width;
        for (int64_t k = 0; k < D; k++) sums[k] = 0.0;
        for (int64_t s = 0; s < S; s++)
          for (int64_t k = 0; k < D; k++) sums[k] += (double)row[s * D + k];
        double total = -q[r];
        for (int64_t k = 0; k < D; k++) total += sums[k] * sums[k];
        y4[r] = (float)(0.5 * total);
      }
      for (int r = 0; r < 4; r++) out[b + r] = y4[r];
    }
  }
  for (; b < B; b++) {
    const float *row = x + b * width;
    /* Each column's sum in s order (a lane each: vectorizable without reordering any one sum). */
    for (int64_t k = 0; k < D; k++) sums[k] = 0.0;
    for (int64_t s = 0; s < S; s++)
      for (int64_t k = 0; k < D; k++) sums[k] += (double)row[s * D + k];
    if (!grad) {
      double squares = 0.0;
      for (int64_t i = 0; i < width; i++) squares += (double)row[i] * (double)row[i];
      double total = -squares;
      for (int64_t k = 0; k < D; k++) total += sums[k] * sums[k];
      out[b] = (float)(0.5 * total);
    } else {
      const double gb = (double)g[b];
      float *d = out + b * width;
      for (int64_t s = 0; s < S; s++)
        for (int64_t k = 0; k < D; k++) d[s * D + k] = (float)(gb * (sums[k] - (double)row[s * D + k]));
    }
  }
  if (sums != stack) free(sums);
  return NULL;
}

static napi_value fm_forward(napi_env env, napi_callback_info info) { return fm_op(env, info, 0); }
static napi_value fm_gradient(napi_env env, napi_callback_info info) { return fm_op(env, info, 1); }

/*
 * addGated(y, x, g, e, E, B, n) and gateGradient(dg, dy, x, e, E, B, n): an
 * MMoE mixture's expert e, for gates g [B, E] and matrices [B, n]:
 * y[b, k] += g[b, e] * x[b, k], and the gates' gradient column e,
 * dg[b, e] = dy_b . x_b. The JavaScript loops' operations in their order
 * (packages/model's addGated, the trainer's gateGradient: products and sums
 * in double, rounded to float once per stored value), so the same bits.
 */
static napi_value gated_op(napi_env env, napi_callback_info info, int grad) {
  const char *name = grad ? "gateGradient" : "addGated";
  napi_value argv[7];
  if (!get_args(env, info, 7, argv, grad ? "gateGradient: expected 7 arguments" : "addGated: expected 7 arguments")) return NULL;
  float *a, *b, *c;
  size_t lenA, lenB, lenC;
  int64_t e, E, B, n;
  if (!get_f32(env, argv[0], grad ? "dg" : "y", &a, &lenA) || !get_f32(env, argv[1], grad ? "dy" : "x", &b, &lenB) ||
      !get_f32(env, argv[2], grad ? "x" : "g", &c, &lenC) || !get_int(env, argv[3], "e", &e) || !get_int(env, argv[4], "E", &E) ||
      !get_int(env, argv[5], "B", &B) || !get_int(env, argv[6], "n", &n)) return NULL;
  if (E < 1 || e < 0 || e >= E || B < 0 || n < 0 || E > INT32_MAX || B > INT32_MAX || n > INT32_MAX) {
    throw_range(env, "%s: expected 0 <= e < E and B, n, E within 0..2^31-1, got e %lld, E %lld, B %lld, n %lld", name, (long long)e, (long long)E, (long long)B, (long long)n);
    return NULL;
  }
  /* Each at most 2^62: no overflow. */
  const int64_t cells = B * n, gates = B * E;
  /* y, x [B, n] and g [B, E]; or dg [B, E] and dy, x [B, n]. */
  const int64_t wantA = grad ? gates : cells, wantB = cells, wantC = grad ? cells : gates;
  if ((uint64_t)wantA > lenA || (uint64_t)wantB > lenB || (uint64_t)wantC > lenC) {
    throw_range(env, "%s: with B %lld, n %lld and E %lld, %s needs %lld values (has %zu), %s %lld (has %zu), %s %lld (has %zu)", name, (long long)B, (long long)n, (long long)E,
                grad ? "dg" : "y", (long long)wantA, lenA, grad ? "dy" : "x", (long long)wantB, lenB, grad ? "x" : "g", (long long)wantC, lenC);
    return NULL;
  }
  if (!grad) {
    for (int64_t r = 0; r < B; r++) {
      const double ge = (double)c[r * E + e];
      float *y = a + r * n;
      const float *x = b + r * n;
      for (int64_t k = 0; k < n; k++) y[k] = (float)((double)y[k] + ge * (double)x[k]);
    }
    return NULL;
  }
  /* Each row's dot product is one chain of additions in k order; four rows' chains run side by side when dg is apart
   * from dy and x (their outputs are written after all four rows are read). */
  const int apart = (a + gates <= b || b + cells <= a) && (a + gates <= c || c + cells <= a);
  int64_t r = 0;
  if (apart) {
    for (; r + 4 <= B; r += 4) {
      const float *d0 = b + r * n, *x0 = c + r * n;
      double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
      for (int64_t k = 0; k < n; k++) {
        s0 += (double)d0[k] * (double)x0[k];
        s1 += (double)d0[n + k] * (double)x0[n + k];
        s2 += (double)d0[2 * n + k] * (double)x0[2 * n + k];
        s3 += (double)d0[3 * n + k] * (double)x0[3 * n + k];
      }
      a[r * E + e] = (float)s0;
      a[(r + 1) * E + e] = (float)s1;
      a[(r + 2) * E + e] = (float)s2;
      a[(r + 3) * E + e] = (float)s3;
    }
  }
  for (; r < B; r++) {
    double dot = 0.0;
    for (int64_t k = 0; k < n; k++) dot += (double)b[r * n + k] * (double)c[r * n + k];
    a[r * E + e] = (float)dot;
  }
  return NULL;
}

static napi_value add_gated(napi_env env, napi_callback_info info) { return gated_op(env, info, 0); }
static napi_value gate_gradient(napi_env env, napi_callback_info info) { return gated_op(env, info, 1); }

/*
 * gatherColumns(rows, W, from, take, rowOf, out, S, outStride, outAt) and
 * scatterAddColumns(src, take, rowOf, W, from, dst, S, srcStride, srcAt): value v = b * S + s (example b, slot s)
 * has row rowOf[v] of rows W wide; its columns from .. from+take go to (come from) example b's row of the other
 * matrix, stride floats a row, at at + s * take. The gather writes (not adds); the scatter adds, values in order: the
 * order scatterAddRows adds a value's whole row in, so the sums have its bits. Slots' columns of the pulled rows
 * (an id's first-order weight, its vector, the whole row) straight into an architecture's input (side by side, or
 * after the dense features) and their gradient straight back, without the pooled [batch, slots x W] block in
 * between. Every index and extent is checked before anything is written, indexes again as they are used (dst may
 * share memory with rowOf).
 */
static napi_value columns_op(napi_env env, napi_callback_info info, int scatter) {
  const char *name = scatter ? "scatterAddColumns" : "gatherColumns";
  napi_value argv[9];
  if (!get_args(env, info, 9, argv, scatter ? "scatterAddColumns: expected 9 arguments" : "gatherColumns: expected 9 arguments")) return NULL;
  float *src, *dst;
  int32_t *rowOf;
  size_t lenSrc, lenDst, n;
  int64_t W, from, take, S, stride, at;
  if (!get_f32(env, argv[0], scatter ? "src" : "rows", &src, &lenSrc)) return NULL;
  if (scatter) {
    if (!get_int(env, argv[1], "take", &take) || !get_i32(env, argv[2], "rowOf", &rowOf, &n) || !get_int(env, argv[3], "W", &W) || !get_int(env, argv[4], "from", &from)) return NULL;
  } else if (!get_int(env, argv[1], "W", &W) || !get_int(env, argv[2], "from", &from) || !get_int(env, argv[3], "take", &take) || !get_i32(env, argv[4], "rowOf", &rowOf, &n)) {
    return NULL;
  }
  if (!get_f32(env, argv[5], scatter ? "dst" : "out", &dst, &lenDst) || !get_int(env, argv[6], "S", &S) || !get_int(env, argv[7], scatter ? "srcStride" : "outStride", &stride) ||
      !get_int(env, argv[8], scatter ? "srcAt" : "outAt", &at)) return NULL;
  if (W < 1 || W > INT32_MAX || from < 0 || take < 0 || from > W || take > W - from) {
    throw_range(env, "%s: expected 0 <= from, 0 <= take, from + take <= W and 1 <= W <= 2^31-1, got W %lld, from %lld, take %lld", name, (long long)W, (long long)from,
                (long long)take);
    return NULL;
  }
  if (S < 1 || S > INT32_MAX || n % (uint64_t)S != 0 || at < 0 || at > INT32_MAX || stride < 0 || stride > INT32_MAX || at + S * take > stride) {
    throw_range(env, "%s: expected S >= 1 dividing the %zu values and at + S x take <= stride (each 0..2^31-1), got S %lld, stride %lld, at %lld, take %lld", name, n,
                (long long)S, (long long)stride, (long long)at, (long long)take);
    return NULL;
  }
  /* B rows of the other matrix, the last one read up to at + S x take (checked arithmetic: arrays may exceed 2^32). */
  const uint64_t B = n / (uint64_t)S;
  uint64_t extent = 0;
  if (B > 0 && (__builtin_mul_overflow(B - 1, (uint64_t)stride, &extent) || __builtin_add_overflow(extent, (uint64_t)(at + S * take), &extent))) extent = UINT64_MAX;
  if (extent > (scatter ? lenSrc : lenDst)) {
    throw_range(env, "%s: %llu rows of stride %lld need %llu floats, %s has %zu", name, (unsigned long long)B, (long long)stride, (unsigned long long)extent, scatter ? "src" : "out",
                scatter ? lenSrc : lenDst);
    return NULL;
  }
  const size_t rows = (scatter ? lenDst : lenSrc) / (size_t)W;
  for (size_t v = 0; v < n; v++) {
    if ((size_t)(uint32_t)rowOf[v] >= rows) {
      throw_range(env, "%s: value %zu: row %d of %zu is out of range", name, v, rowOf[v], rows);
      return NULL;
    }
  }
  size_t v = 0;
  for (uint64_t b = 0; b < B; b++) {
    float *other = (scatter ? src : dst) + b * (uint64_t)stride + (uint64_t)at;
    for (int64_t s = 0; s < S; s++, v++, other += take) {
      const size_t r = (size_t)(uint32_t)rowOf[v];
      if (r >= rows) {
        throw_range(env, "%s: value %zu: row %zu of %zu is out of range", name, v, r, rows);
        return NULL;
      }
      if (scatter) {
        float *to = dst + r * (size_t)W + (size_t)from;
        for (int64_t k = 0; k < take; k++) to[k] += other[k];
      } else {
        const float *in = src + r * (size_t)W + (size_t)from;
        for (int64_t k = 0; k < take; k++) other[k] = in[k];
      }
    }
  }
  return NULL;
}

static napi_value gather_columns(napi_env env, napi_callback_info info) { return columns_op(env, info, 0); }
static napi_value scatter_add_columns(napi_env env, napi_callback_info info) { return columns_op(env, info, 1); }

static napi_value gather_rows(napi_env env, napi_callback_info info) { return rows_op(env, info, 0); }
static napi_value scatter_add_rows(napi_env env, napi_callback_info info) { return rows_op(env, info, 1); }



/* The interaction's vectors of example e: row 0 is the bottom MLP's output
 * (x [B, D]), rows 1..n-1 its pooled embeddings (em [B, n - 1, D]). */
static inline const float *vec(const float *x, const float *em, int64_t n, int64_t D, int64_t e, int64_t i) {
  return i == 0 ? x + e * D : em + (e * (n - 1) + i - 1) * D;
}

/* out[e * os + p] = <v_i, v_j> for the pairs i < j of example e: four lanes at a time, then the D % 4 rest. */
static void interaction_forward_generic(const float *x, const float *em, int64_t B, int64_t n, int64_t D, float *out, int64_t os) {
  const int64_t D4 = D - D % 4;
  for (int64_t e = 0; e < B; e++) {
    float *pe = out + e * os;
    for (int64_t i = 0; i < n; i++) {
      const float *zi = vec(x, em, n, D, e, i);
      for (int64_t j = i + 1; j < n; j++) {
        const float *zj = vec(x, em, n, D, e, j);
        v4f acc = {0, 0, 0, 0};
        for (int64_t k = 0; k < D4; k += 4) acc += load4(zi + k) * load4(zj + k);
        float dot = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        for (int64_t k = D4; k < D; k++) dot += zi[k] * zj[k];
        *pe++ = dot;
      }
    }
  }
}

/* dv_i += dOut[e * os + p] v_j; dv_j += dOut[e * os + p] v_i (dv laid out as v, in dx and dem): four lanes at a time, then the rest. */
static void interaction_backward_generic(const float *x, const float *em, int64_t B, int64_t n, int64_t D, const float *dOut, int64_t os, float *dx,
                                 float *dem) {
  const int64_t D4 = D - D % 4;
  for (int64_t e = 0; e < B; e++) {
    const float *pe = dOut + e * os;
    for (int64_t i = 0; i < n; i++) {
      const float *zi = vec(x, em, n, D, e, i);
      float *di = (float *)vec(dx, dem, n, D, e, i);
      for (int64_t j = i + 1; j < n; j++) {
        const float *zj = vec(x, em, n, D, e, j);
        float *dj = (float *)vec(dx, dem, n, D, e, j);
        const float s = *pe++;
        const v4f g = {s, s, s, s};
        for (int64_t k = 0; k < D4; k += 4) {
          store4(di + k, load4(di + k) + g * load4(zj + k));
          store4(dj + k, load4(dj + k) + g * load4(zi + k));
        }
        for (int64_t k = D4; k < D; k++) {
          di[k] += s * zj[k];
          dj[k] += s * zi[k];
        }
      }
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Eight-lane kernels for CPUs with AVX2 and FMA (chosen at run time, so the
 * addon still loads on older x86-64), when D is a multiple of 8. Lanes run
 * across the pairs' partners (forward) or the embedding width (backward),
 * so no dot product needs a horizontal sum:
 *   forward:  example e's vectors transposed to zt [D, n8] (n8 = n rounded
 *             up to 8, zero padding), then the upper part of the Gram
 *             matrix, 8 partners j by 4 rows i at a time;
 *   backward: dv_i = sum_j G_ij v_j with G the symmetric n x n matrix of the
 *             pairs' incoming gradients (zero diagonal). */
__attribute__((target("avx2,fma"))) static int interaction_forward_avx2(const float *x, const float *em, int64_t B, int64_t n, int64_t D,
                                                                       float *out, int64_t os) {
  const int64_t n8 = (n + 7) & ~(int64_t)7;
  /* zt [D, n8]; gram [n8, n8] (rows past n - 1 are computed from a zero row and not used); zero [D]; v [n8] row pointers. */
  float *zt = calloc((size_t)(D * n8 + n8 * n8 + D), sizeof(float));
  const float **v = malloc((size_t)n8 * sizeof(float *));
  if (!zt || !v) {
    free(zt);
    free(v);
    return 0;
  }
  float *gram = zt + D * n8;
  const float *zero = gram + n8 * n8;
  for (int64_t i = n; i < n8; i++) v[i] = zero;
  for (int64_t e = 0; e < B; e++) {
    for (int64_t i = 0; i < n; i++) {
      v[i] = vec(x, em, n, D, e, i);
      for (int64_t k = 0; k < D; k++) zt[k * n8 + i] = v[i][k];
    }
    /* Column block jb holds the partners j of the rows i < min(jb + 7, n - 1); four rows at a time, independent sums. */
    for (int64_t jb = 0; jb < n; jb += 8) {
      const int64_t rows = (jb + 7 < n - 1 ? jb + 7 : n - 1);
      for (int64_t i = 0; i < rows; i += 4) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float *r0 = v[i], *r1 = v[i + 1], *r2 = v[i + 2], *r3 = v[i + 3];
        for (int64_t k = 0; k < D; k++) {
          const __m256 t = _mm256_loadu_ps(zt + k * n8 + jb);
          a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(r0 + k), t, a0);
          a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(r1 + k), t, a1);
          a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(r2 + k), t, a2);
          a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(r3 + k), t, a3);
        }
        _mm256_storeu_ps(gram + i * n8 + jb, a0);
        _mm256_storeu_ps(gram + (i + 1) * n8 + jb, a1);
        _mm256_storeu_ps(gram + (i + 2) * n8 + jb, a2);
        _mm256_storeu_ps(gram + (i + 3) * n8 + jb, a3);
      }
    }
    float *pe = out + e * os;
    for (int64_t i = 0; i + 1 < n; i++) {
      memcpy(pe, gram + i * n8 + i + 1, (size_t)(n - i - 1) * sizeof(float));
      pe += n - i - 1;
    }
  }
  free(zt);
  free(v);
  return 1;
}

__attribute__((target("avx2,fma"))) static int interaction_backward_avx2(const float *x, const float *em, int64_t B, int64_t n, int64_t D,
                                                                        const float *dOut, int64_t os, float *dx, float *dem) {
  float *G = calloc((size_t)(n * n), sizeof(float));
  const float **v = malloc((size_t)n * sizeof(float *));
  if (!G || !v) {
    free(G);
    free(v);
    return 0;
  }
  for (int64_t e = 0; e < B; e++) {
    const float *pe = dOut + e * os;
    for (int64_t i = 0; i < n; i++) {
      v[i] = vec(x, em, n, D, e, i);
      for (int64_t j = i + 1; j < n; j++) {
        const float g = *pe++;
        G[i * n + j] = g;
        G[j * n + i] = g;
      }
    }
    /* Four rows at a time (independent sums sharing each load of v_j), then the rest one by one. */
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      float *d0 = (float *)vec(dx, dem, n, D, e, i), *d1 = (float *)vec(dx, dem, n, D, e, i + 1);
      float *d2 = (float *)vec(dx, dem, n, D, e, i + 2), *d3 = (float *)vec(dx, dem, n, D, e, i + 3);
      const float *g0 = G + i * n, *g1 = g0 + n, *g2 = g1 + n, *g3 = g2 + n;
      for (int64_t kb = 0; kb < D; kb += 8) {
        __m256 a0 = _mm256_loadu_ps(d0 + kb), a1 = _mm256_loadu_ps(d1 + kb), a2 = _mm256_loadu_ps(d2 + kb), a3 = _mm256_loadu_ps(d3 + kb);
        for (int64_t j = 0; j < n; j++) {
          const __m256 t = _mm256_loadu_ps(v[j] + kb);
          a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(g0 + j), t, a0);
          a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(g1 + j), t, a1);
          a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(g2 + j), t, a2);
          a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(g3 + j), t, a3);
        }
        _mm256_storeu_ps(d0 + kb, a0);
        _mm256_storeu_ps(d1 + kb, a1);
        _mm256_storeu_ps(d2 + kb, a2);
        _mm256_storeu_ps(d3 + kb, a3);
      }
    }
    for (; i < n; i++) {
      float *di = (float *)vec(dx, dem, n, D, e, i);
      const float *gi = G + i * n;
      for (int64_t kb = 0; kb < D; kb += 8) {
        __m256 acc = _mm256_loadu_ps(di + kb);
        for (int64_t j = 0; j < n; j++) acc = _mm256_fmadd_ps(_mm256_set1_ps(gi[j]), _mm256_loadu_ps(v[j] + kb), acc);
        _mm256_storeu_ps(di + kb, acc);
      }
    }
  }
  free(G);
  free(v);
  return 1;
}

/* Sparse Adagrad on one row, four doubles at a time: the scalar loop's operations in its order (no fused multiply-add:
 * C11 mode), each correctly rounded as there, so the same bits. */
__attribute__((target("avx2,fma"))) static int64_t adagrad_row_avx2(float *wr, float *sr, const float *g, int64_t dim, double workers, double lr, double wd) {
  const __m256d vw = _mm256_set1_pd(workers), vlr = _mm256_set1_pd(lr), vwd = _mm256_set1_pd(wd);
  int64_t d = 0;
  for (; d + 4 <= dim; d += 4) {
    const __m256d mean = _mm256_cvtps_pd(_mm256_cvtpd_ps(_mm256_div_pd(_mm256_cvtps_pd(_mm_loadu_ps(g + d)), vw)));
    const __m256d w = _mm256_cvtps_pd(_mm_loadu_ps(wr + d));
    const __m256d gi = _mm256_add_pd(mean, _mm256_mul_pd(vwd, w));
    const __m256d n = _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(sr + d)), _mm256_mul_pd(gi, gi));
    _mm_storeu_ps(sr + d, _mm256_cvtpd_ps(n));
    _mm_storeu_ps(wr + d, _mm256_cvtpd_ps(_mm256_sub_pd(w, _mm256_div_pd(_mm256_mul_pd(vlr, gi), _mm256_sqrt_pd(n)))));
  }
  return d;
}

static int avx2_for(int64_t D) {
  static int supported = -1;
  if (supported < 0) {
    __builtin_cpu_init();
    supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !getenv("PANGEA_BLAS_NO_AVX2");
  }
  return supported && D % 8 == 0;
}
#else
static int avx2_for(int64_t D) { (void)D; return 0; }
#define adagrad_row_avx2(...) 0
#define interaction_forward_avx2(...) 0
#define interaction_backward_avx2(...) 0
#endif

/* The eight-lane kernels where they apply (and their scratch could be had), else the generic ones. */
static void interaction_forward(const float *x, const float *em, int64_t B, int64_t n, int64_t D, float *out, int64_t os) {
  if (avx2_for(D) && interaction_forward_avx2(x, em, B, n, D, out, os)) return;
  interaction_forward_generic(x, em, B, n, D, out, os);
}

static void interaction_backward(const float *x, const float *em, int64_t B, int64_t n, int64_t D, const float *dOut, int64_t os, float *dx,
                                 float *dem) {
  if (avx2_for(D) && interaction_backward_avx2(x, em, B, n, D, dOut, os, dx, dem)) return;
  interaction_backward_generic(x, em, B, n, D, dOut, os, dx, dem);
}

/* An array argument and its element offset; *region = the floats from there on. */
static int get_at(napi_env env, napi_value arr, napi_value off, const char *name, float **region, int64_t *avail) {
  float *data;
  size_t len;
  int64_t o;
  if (!get_f32(env, arr, name, &data, &len) || !get_int(env, off, name, &o)) return 0;
  if (o < 0 || o > (int64_t)len) {
    throw_range(env, "offset %lld of %s is outside its %zu values", (long long)o, name, len);
    return 0;
  }
  *region = data + o;
  *avail = (int64_t)len - o;
  return 1;
}

static int disjoint(const float *a, int64_t na, const float *b, int64_t nb) { return a + na <= b || b + nb <= a; }

/*
 * DLRM's dot interaction with the bottom output and the embeddings apart,
 * each at an offset (all may be views of one heap, e.g. WebAssembly memory).
 * Computing the pairs directly costs half the products of the full z z^T and
 * needs no triangle gather afterwards:
 *   dotInteractionSplit(x, xOff, em, emOff, B, S, D, out, outOff, outStride):
 *     out[outOff + b*outStride + p] = the pairs of [x_b; em_b,0 .. em_b,S-1], x [B, D], em [B, S, D]
 *   dotInteractionSplitGrad(x, xOff, em, emOff, B, S, D, dOut, dOutOff, dOutStride, dx, dxOff, dem, demOff):
 *     dx [B, D] and dem [B, S, D] = the gradient (overwritten, not added to)
 * Outputs may not overlap the inputs.
 */
static napi_value interaction_split(napi_env env, napi_callback_info info, int grad) {
  napi_value argv[14];
  if (!get_args(env, info, grad ? 14 : 10, argv, grad ? "dotInteractionSplitGrad: expected 14 arguments" : "dotInteractionSplit: expected 10 arguments")) return NULL;
  float *x, *em, *o, *dx = NULL, *dem = NULL;
  int64_t nx, nem, no, ndx = 0, ndem = 0, B, S, D, os;
  if (!get_at(env, argv[0], argv[1], "x", &x, &nx) || !get_at(env, argv[2], argv[3], "em", &em, &nem) || !get_int(env, argv[4], "B", &B) ||
      !get_int(env, argv[5], "S", &S) || !get_int(env, argv[6], "D", &D) || !get_at(env, argv[7], argv[8], grad ? "dOut" : "out", &o, &no) ||
      !get_int(env, argv[9], "outStride", &os))
    return NULL;
  if (grad && (!get_at(env, argv[10], argv[11], "dx", &dx, &ndx) || !get_at(env, argv[12], argv[13], "dem", &dem, &ndem))) return NULL;
  /* Each extent bounded first, so none of the products below can overflow. */
  if (B < 0 || S < 0 || D < 1 || B > INT32_MAX || S > 65535 || D > 65535 || os < 0 || os > INT32_MAX) {
    napi_throw_range_error(env, "PANGEA_BLAS_ERR_RANGE", "dot interaction: B and outStride must be 0..2^31-1, S 0..65535, D 1..65535");
    return NULL;
  }
  const int64_t n = S + 1, P = n * (n - 1) / 2;
  const int64_t span = B > 0 ? (B - 1) * os + P : 0;
  if (os < P || nx < B * D || nem < B * S * D || no < span || (grad && (ndx < B * D || ndem < B * S * D))) {
    napi_throw_range_error(env, "PANGEA_BLAS_ERR_RANGE", "dot interaction: x, dx shorter than B x D, em, dem than B x S x D, or the pairs than B rows of outStride >= (S+1)S/2");
    return NULL;
  }
  const int ok = grad ? disjoint(dx, B * D, x, B * D) && disjoint(dx, B * D, em, B * S * D) && disjoint(dem, B * S * D, x, B * D) &&
                            disjoint(dem, B * S * D, em, B * S * D) && disjoint(dx, B * D, dem, B * S * D) && disjoint(dx, B * D, o, span) && disjoint(dem, B * S * D, o, span)
                      : disjoint(o, span, x, B * D) && disjoint(o, span, em, B * S * D);
  if (!ok) {
    napi_throw_range_error(env, "PANGEA_BLAS_ERR_RANGE", "dot interaction: an output overlaps an input");
    return NULL;
  }
  if (grad) {
    memset(dx, 0, (size_t)(B * D) * sizeof(float));
    memset(dem, 0, (size_t)(B * S * D) * sizeof(float));
    interaction_backward(x, em, B, n, D, o, os, dx, dem);
  } else
    interaction_forward(x, em, B, n, D, o, os);
  return NULL;
}

static napi_value dot_interaction_split(napi_env env, napi_callback_info info) { return interaction_split(env, info, 0); }
static napi_value dot_interaction_split_grad(napi_env env, napi_callback_info info) { return interaction_split(env, info, 1); }

/* An optional Float32Array argument (null or undefined: *data = NULL) at an element offset, with room for n values. */
static int get_opt_region(napi_env env, napi_value arr, napi_value off, const char *name, int64_t n, float **data) {
  napi_valuetype t;
  if (napi_typeof(env, arr, &t) != napi_ok) {
    throw_arg(env, "%s: cannot tell its type", name);
    return 0;
  }
  if (t == napi_null || t == napi_undefined) {
    *data = NULL;
    return 1;
  }
  int64_t avail;
  if (!get_at(env, arr, off, name, data, &avail)) return 0;
  if (avail < n) {
    throw_range(env, "%s: %lld values needed from its offset, %lld there", name, (long long)n, (long long)avail);
    return 0;
  }
  return 1;
}

/*
 * A dense layer's gradient before its matmuls, in one pass over dy [rows, cols]:
 *   biasReluGrad(dy, dyOff, y, yOff, dz, dzOff, rows, cols, db, dbOff)
 * with y (the layer's ReLU output): dz = dy where y > 0, else 0; db = dz's column sums.
 * with y = null (no ReLU): db = dy's column sums; dz is not written (may be null).
 */
static napi_value bias_relu_grad(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  if (!get_args(env, info, 10, argv, "biasReluGrad: expected 10 arguments")) return NULL;
  int64_t rows, cols;
  if (!get_int(env, argv[6], "rows", &rows) || !get_int(env, argv[7], "cols", &cols)) return NULL;
  if (rows < 0 || cols < 0) {
    napi_throw_range_error(env, "PANGEA_BLAS_ERR_RANGE", "biasReluGrad: rows and cols must be >= 0");
    return NULL;
  }
  int64_t n;
  if (__builtin_mul_overflow(rows, cols, &n)) {
    napi_throw_range_error(env, "PANGEA_BLAS_ERR_RANGE", "biasReluGrad: rows x cols overflows");
    return NULL;
  }
  float *dy, *y, *dz, *db;
  if (!get_opt_region(env, argv[0], argv[1], "dy", n, &dy) || !get_opt_region(env, argv[2], argv[3], "y", n, &y) ||
      !get_opt_region(env, argv[4], argv[5], "dz", n, &dz) || !get_opt_region(env, argv[8], argv[9], "db", cols, &db))
    return NULL;
  if (!dy || !db || (y && !dz)) {
    napi_throw_type_error(env, "PANGEA_BLAS_ERR_ARG", "biasReluGrad: dy and db are required, and dz with y");
    return NULL;
  }
  if ((dz && (!disjoint(dz, n, dy, n) || (y && !disjoint(dz, n, y, n)) || !disjoint(dz, n, db, cols))) || !disjoint(db, cols, dy, n) || (y && !disjoint(db, cols, y, n))) {
    napi_throw_range_error(env, "PANGEA_BLAS_ERR_RANGE", "biasReluGrad: an output overlaps an input");
    return NULL;
  }
  memset(db, 0, (size_t)cols * sizeof(float));
  const int64_t c4 = cols - cols % 4;
  const v4f zero = {0, 0, 0, 0};
  for (int64_t r = 0; r < rows; r++) {
    const float *g = dy + r * cols;
    if (y) {
      const float *yr = y + r * cols;
      float *zr = dz + r * cols;
      /* The mask as bits (no branch: the signs of activations are a coin toss to a predictor). */
      for (int64_t c = 0; c < c4; c += 4) {
        const v4i m = load4(yr + c) > zero;
        const v4f v = (v4f)((v4i)load4(g + c) & m);
        store4(zr + c, v);
        store4(db + c, load4(db + c) + v);
      }
      for (int64_t c = c4; c < cols; c++) {
        const float v = yr[c] > 0 ? g[c] : 0.0f;
        zr[c] = v;
        db[c] += v;
      }
    } else
      for (int64_t c = 0; c < cols; c++) db[c] += g[c];
  }
  return NULL;
}

static int get_double(napi_env env, napi_value v, const char *name, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    throw_arg(env, "%s: expected a number", name);
    return 0;
  }
  return 1;
}

/*
 * adagrad(w, acc, g, lr, eps, l2): with g' = g + l2 w (coupled L2, as
 * torch.optim.Adagrad's weight_decay), acc += g'^2; w -= lr g' / (sqrt(acc) + eps),
 * element by element, in double precision with each result rounded to float
 * once, the operations and order of the JavaScript version (so the two give
 * the same bits: no contraction, C11 mode).
 */
static napi_value adagrad(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!get_args(env, info, 6, argv, "adagrad: expected 6 arguments")) return NULL;
  float *w, *acc, *g;
  size_t nw, na, ng;
  double lr, eps, l2;
  if (!get_f32(env, argv[0], "w", &w, &nw) || !get_f32(env, argv[1], "acc", &acc, &na) || !get_f32(env, argv[2], "g", &g, &ng) ||
      !get_double(env, argv[3], "lr", &lr) || !get_double(env, argv[4], "eps", &eps) || !get_double(env, argv[5], "l2", &l2))
    return NULL;
  if (na != nw || ng != nw) {
    throw_range(env, "adagrad: w, acc and g must have the same length (%zu, %zu, %zu)", nw, na, ng);
    return NULL;
  }
  for (size_t i = 0; i < nw; i++) {
    /* l2 0 leaves g as it is (not g + 0 w, which may flip a zero's sign): today's bits. */
    const double gi = l2 == 0 ? (double)g[i] : (double)g[i] + l2 * (double)w[i];
    const double a = (double)acc[i] + gi * gi;
    acc[i] = (float)a;
    w[i] = (float)((double)w[i] - (lr * gi) / (sqrt(a) + eps));
  }
  return NULL;
}

/* addInto(dst, src): dst += src element by element (float sums: the bits JavaScript's
 * double sum rounded to float gives). */
static napi_value add_into(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, "addInto: expected 2 arguments")) return NULL;
  float *dst, *src;
  size_t nd, ns;
  if (!get_f32(env, argv[0], "dst", &dst, &nd) || !get_f32(env, argv[1], "src", &src, &ns)) return NULL;
  if (nd != ns) {
    throw_range(env, "addInto: dst has %zu values, src %zu", nd, ns);
    return NULL;
  }
  for (size_t i = 0; i < nd; i++) dst[i] += src[i];
  return NULL;
}

/*
 * firstOutside(a, max): the index of a's first value that is NaN or above
 * `max` in magnitude, or -1: the orchestrator's check of a push's gradients
 * (JavaScript's !(Math.abs(x) <= max) with max a double: against the largest
 * float not above it), sixteen values at a time until a block has one.
 */
static napi_value first_outside(napi_env env, napi_callback_info info) {
  napi_value argv[2], out;
  if (!get_args(env, info, 2, argv, "firstOutside: expected 2 arguments")) return NULL;
  float *a;
  size_t n;
  double max;
  if (!get_f32(env, argv[0], "a", &a, &n) || !get_double(env, argv[1], "max", &max)) return NULL;
  float lim = (float)max;
  if ((double)lim > max) lim = nextafterf(lim, -INFINITY);
  const v4f L = {lim, lim, lim, lim};
  const v4i ABS = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
  size_t i = 0;
  /* |x| <= lim is false for NaN (and for everything when max is NaN), as in JavaScript. */
  for (; i + 16 <= n; i += 16) {
    const v4i ok = ((v4f)((v4i)load4(a + i) & ABS) <= L) & ((v4f)((v4i)load4(a + i + 4) & ABS) <= L) & ((v4f)((v4i)load4(a + i + 8) & ABS) <= L) &
                   ((v4f)((v4i)load4(a + i + 12) & ABS) <= L);
    if (!(ok[0] & ok[1] & ok[2] & ok[3])) break;
  }
  int64_t at = -1;
  for (; i < n; i++)
    if (!(fabsf(a[i]) <= lim)) {
      at = (int64_t)i;
      break;
    }
  CHECK(napi_create_int64(env, at, &out));
  return out;
}

/* divideBy(a, n): a[i] = a[i] / n in double rounded to float (JavaScript's a[i] /= n on a Float32Array). */
static napi_value divide_by(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, "divideBy: expected 2 arguments")) return NULL;
  float *a;
  size_t n;
  double d;
  if (!get_f32(env, argv[0], "a", &a, &n) || !get_double(env, argv[1], "n", &d)) return NULL;
  for (size_t i = 0; i < n; i++) a[i] = (float)((double)a[i] / d);
  return NULL;
}

/*
 * The orchestrator's embedding tables (services/orchestrator, EmbeddingTable)
 * keep their ids in an open-addressing index: 3 words a slot (id low word,
 * id high word, row + 1; 0 = empty), linear probing from a home slot, a
 * power-of-two capacity never more than 70% full. A table's rows are
 * `width` floats at row * width of its weights. These kernels do a pull's or
 * a push's per-id work for many ids at once, prefetching the index slots and
 * rows some ids ahead: a table of millions of rows is far larger than the
 * caches, and one id after the other waits for each miss in turn.
 */
#define ID_PREFETCH 12
/* The v2 feature id's slot: bits 16..30 of the high word (packages/features, slotOfV2). */
#define V2_SLOT_OF(hi) (((hi) >> 16) & 0x7fffu)
#define V2_SLOTS 0x8000

/* The same home slot as EmbeddingTable.home (mix32: id-hash.h). */
static inline uint32_t id_home(uint32_t lo, uint32_t hi, uint32_t mask) { return mix32(lo ^ mix32(hi ^ 0x27d4eb2du)) & mask; }

typedef struct {
  uint32_t *slots;
  uint32_t mask;
} id_index;

/* A JavaScript array's elements (at most one per slot), fetched into a malloc'd block the caller frees: a getter
 * may run JavaScript while they are fetched, so a call fetches every list it takes before it takes the memory
 * address of any array (typed_addresses); no JavaScript runs while those are held. */
static int get_elements(napi_env env, napi_value v, const char *name, const char *what, uint32_t limit, napi_value **elements, uint32_t *count) {
  bool is_array = false;
  napi_is_array(env, v, &is_array);
  if (!is_array || napi_get_array_length(env, v, count) != napi_ok) {
    throw_arg(env, "%s: expected an array, each %s", name, what);
    return 0;
  }
  if (*count > limit) {
    throw_range(env, "%s: %u entries, at most %u", name, *count, limit);
    return 0;
  }
  *elements = (napi_value *)malloc((*count ? *count : 1) * sizeof(napi_value));
  if (!*elements) {
    napi_throw_error(env, "PANGEA_BLAS_ERR_NAPI", "out of memory");
    return 0;
  }
  for (uint32_t i = 0; i < *count; i++) {
    if (napi_get_element(env, v, i, &(*elements)[i]) != napi_ok) {
      throw_arg(env, "%s[%u]: could not be read", name, i);
      free(*elements);
      return 0;
    }
  }
  return 1;
}

/* The memory of `count` fetched elements, each a typed array of type `want`: *data and *lengths are malloc'd, one
 * entry each (the caller frees *data, which holds both; NULL after a failure, which frees it here). */
static int typed_addresses(napi_env env, napi_value *elements, uint32_t count, const char *name, napi_typedarray_type want, const char *what, void ***data,
                           size_t **lengths) {
  size_t n = count ? count : 1;
  void *block = malloc(n * (sizeof(void *) + sizeof(size_t)));
  if (!block) {
    napi_throw_error(env, "PANGEA_BLAS_ERR_NAPI", "out of memory");
    return 0;
  }
  *data = (void **)block;
  *lengths = (size_t *)((char *)block + n * sizeof(void *));
  for (uint32_t i = 0; i < count; i++) {
    napi_typedarray_type type;
    napi_value buffer;
    size_t offset;
    bool is_typed = false;
    /* The error's label is formatted only for an error: a list of 26 tables formatted 26 labels a call. */
    napi_is_typedarray(env, elements[i], &is_typed);
    if (!is_typed || napi_get_typedarray_info(env, elements[i], &type, &(*lengths)[i], &(*data)[i], &buffer, &offset) != napi_ok || type != want) {
      throw_arg(env, "%s[%u]: expected %s", name, i, what);
      free(block);
      *data = NULL;
      *lengths = NULL;
      return 0;
    }
  }
  return 1;
}

/* A JavaScript array of typed arrays of one type (get_elements, then typed_addresses); callers take this list
 * before any other array argument. */
static int get_typed_list(napi_env env, napi_value v, const char *name, napi_typedarray_type want, const char *what, void ***data, size_t **lengths,
                          uint32_t *count) {
  napi_value *elements;
  if (!get_elements(env, v, name, what, V2_SLOTS, &elements, count)) return 0;
  int ok = typed_addresses(env, elements, *count, name, want, what, data, lengths);
  free(elements);
  return ok;
}

static int get_u32(napi_env env, napi_value v, const char *name, uint32_t **data, size_t *length) {
  return get_typed(env, v, name, napi_uint32_array, "a Uint32Array", (void **)data, length);
}

/*
 * findRows(indexes, tableOfSlot, ids, count, rows, tables): for each of
 * `count` ids (word pairs in ids), its table t = tableOfSlot[slot of the id]
 * (-1: none) and its row in indexes[t], or -1 where it has none; written to
 * tables[i] and rows[i]. Reads only.
 */
static napi_value find_rows(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!get_args(env, info, 6, argv, "findRows: expected 6 arguments")) return NULL;
  void **ptrs;
  size_t *lens;
  uint32_t nIdx;
  if (!get_typed_list(env, argv[0], "indexes", napi_uint32_array, "a Uint32Array", &ptrs, &lens, &nIdx)) return NULL;
  int32_t *tableOfSlot, *rows, *tables;
  uint32_t *ids;
  size_t nSlots, nIds, nRows, nTables;
  int64_t count;
  if (!get_i32(env, argv[1], "tableOfSlot", &tableOfSlot, &nSlots) || !get_u32(env, argv[2], "ids", &ids, &nIds) || !get_int(env, argv[3], "count", &count) ||
      !get_i32(env, argv[4], "rows", &rows, &nRows) || !get_i32(env, argv[5], "tables", &tables, &nTables)) {
    free(ptrs);
    return NULL;
  }
  if (nSlots < V2_SLOTS || count < 0 || (uint64_t)count * 2 > nIds || (uint64_t)count > nRows || (uint64_t)count > nTables) {
    throw_range(env, "findRows: tableOfSlot needs %d entries (has %zu), ids 2 x count words (%zu for %lld), rows and tables count entries (%zu, %zu)", V2_SLOTS,
                nSlots, nIds, (long long)count, nRows, nTables);
    free(ptrs);
    return NULL;
  }
  /* Each index's mask, in the lengths' place (our memory: the caller's arrays cannot change it). */
  for (uint32_t t = 0; t < nIdx; t++) {
    size_t cap = lens[t] / 3;
    if (lens[t] % 3 != 0 || cap == 0 || (cap & (cap - 1)) != 0 || cap > 0x80000000u) {
      throw_range(env, "findRows: indexes[%u] has %zu words, expected 3 x a power of two", t, lens[t]);
      free(ptrs);
      return NULL;
    }
    lens[t] = cap - 1;
  }
  for (int64_t i = 0; i < count; i++) {
    int32_t t = tableOfSlot[V2_SLOT_OF(ids[2 * i + 1])];
    if (t >= (int32_t)nIdx) {
      throw_range(env, "findRows: id %lld's slot maps to table %d of %u", (long long)i, t, nIdx);
      free(ptrs);
      return NULL;
    }
  }
  /* Id i's id words, table and home slot, read once (ID_PREFETCH ids ahead, when its slot's line is prefetched) and
   * used from here: the outputs may share memory with the inputs, so nothing checked is read again from them. */
  struct {
    uint32_t lo, hi, home;
    int32_t t;
  } ring[ID_PREFETCH];
  for (int64_t i = 0; i < count + ID_PREFETCH; i++) {
    /* Id j's probe first: ring[j % ID_PREFETCH] is id i's place next. */
    int64_t j = i - ID_PREFETCH;
    if (j >= 0) {
      const uint32_t lo = ring[j % ID_PREFETCH].lo, hi = ring[j % ID_PREFETCH].hi;
      const int32_t t = ring[j % ID_PREFETCH].t;
      int32_t row = -1;
      if (t >= 0) {
        const uint32_t *s = (const uint32_t *)ptrs[t];
        uint32_t mask = (uint32_t)lens[t], at = ring[j % ID_PREFETCH].home;
        /* At most a full circle: a well-formed index always has an empty slot, a malformed one must not loop forever. */
        for (uint64_t probes = 0; probes <= mask; probes++) {
          const uint32_t *e = s + 3 * (size_t)at;
          const uint32_t mark = e[2];
          if (mark == 0) break;
          if (e[0] == lo && e[1] == hi) {
            row = mark - 1 > INT32_MAX ? -1 : (int32_t)(mark - 1);
            break;
          }
          at = (at + 1) & mask;
        }
      }
      tables[j] = t;
      rows[j] = row;
    }
    if (i < count) {
      const uint32_t lo = ids[2 * i], hi = ids[2 * i + 1];
      int32_t t = tableOfSlot[V2_SLOT_OF(hi)];
      if (t >= (int32_t)nIdx || t < 0) t = -1; /* -1, or changed since the check (shared memory): no table */
      ring[i % ID_PREFETCH].lo = lo;
      ring[i % ID_PREFETCH].hi = hi;
      ring[i % ID_PREFETCH].t = t;
      if (t >= 0) {
        uint32_t h = id_home(lo, hi, (uint32_t)lens[t]);
        ring[i % ID_PREFETCH].home = h;
        __builtin_prefetch((const uint32_t *)ptrs[t] + 3 * (size_t)h);
      }
    }
  }
  free(ptrs);
  return NULL;
}

/*
 * readRows(weights, tables, rows, count, offsets, out): copies id i's row
 * (rows[i] of weights[tables[i]], offsets[i + 1] - offsets[i] floats wide)
 * to out[offsets[i]..offsets[i + 1]), or zeros where the id has no row
 * (rows[i] or tables[i] < 0). Every extent is checked before a float is written.
 */
static napi_value read_rows(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!get_args(env, info, 6, argv, "readRows: expected 6 arguments")) return NULL;
  void **ptrs;
  size_t *lens;
  uint32_t nW;
  if (!get_typed_list(env, argv[0], "weights", napi_float32_array, "a Float32Array", &ptrs, &lens, &nW)) return NULL;
  int32_t *tables, *rows, *offsets;
  float *out;
  size_t nTables, nRows, nOffsets, nOut;
  int64_t count;
  if (!get_i32(env, argv[1], "tables", &tables, &nTables) || !get_i32(env, argv[2], "rows", &rows, &nRows) || !get_int(env, argv[3], "count", &count) ||
      !get_i32(env, argv[4], "offsets", &offsets, &nOffsets) || !get_f32(env, argv[5], "out", &out, &nOut)) {
    free(ptrs);
    return NULL;
  }
  if (count < 0 || (uint64_t)count > nTables || (uint64_t)count > nRows || (uint64_t)count + 1 > nOffsets) {
    throw_range(env, "readRows: tables and rows need count entries, offsets count + 1 (%zu, %zu, %zu for %lld)", nTables, nRows, nOffsets, (long long)count);
    free(ptrs);
    return NULL;
  }
  /* Checked before a float is written (a bad call writes nothing), and each id again as it is copied: out may share
   * memory with the other arrays, so a copy may change what the check read. */
  for (int pass = 0; pass < 2; pass++) {
    for (int64_t i = 0; i < count; i++) {
      const int64_t from = offsets[i], to = offsets[i + 1], w = to - from;
      const int32_t t = tables[i], r = rows[i];
      if (from < 0 || w < 0 || (uint64_t)to > nOut) {
        throw_range(env, "readRows: id %lld's place %lld..%lld is outside out's %zu floats", (long long)i, (long long)from, (long long)to, nOut);
        free(ptrs);
        return NULL;
      }
      if (t >= (int32_t)nW || (t >= 0 && r >= 0 && ((uint64_t)r + 1) * (uint64_t)w > lens[t])) {
        throw_range(env, "readRows: id %lld's row %d (%lld floats) of table %d is outside its weights", (long long)i, r, (long long)w, t);
        free(ptrs);
        return NULL;
      }
      if (pass == 0) continue;
      const int64_t k = i + ID_PREFETCH;
      if (k < count) {
        const int32_t tk = tables[k], rk = rows[k];
        const int64_t wk = (int64_t)offsets[k + 1] - offsets[k];
        if (tk >= 0 && tk < (int32_t)nW && rk >= 0 && wk > 0 && ((uint64_t)rk + 1) * (uint64_t)wk <= lens[tk]) {
          const float *p = (const float *)ptrs[tk] + (size_t)rk * (size_t)wk;
          __builtin_prefetch(p);
          __builtin_prefetch(p + wk - 1);
        }
      }
      float *dst = out + from;
      if (t < 0 || r < 0) memset(dst, 0, (size_t)w * sizeof(float));
      else memmove(dst, (const float *)ptrs[t] + (size_t)r * (size_t)w, (size_t)w * sizeof(float));
    }
  }
  free(ptrs);
  return NULL;
}

/*
 * rehashIndex(rowIds, size, index): a table's index rebuilt, empty, for its rows 0..size-1 (EmbeddingTable.rehash):
 * row r's id (rowIds[2r], rowIds[2r + 1]) at its first free slot from its home, rows in order (the layout the
 * JavaScript makes). index: 3 x a power of two words, all zero, with room for size rows under the load of 0.7.
 */
static napi_value rehash_index(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv, "rehashIndex: expected 3 arguments")) return NULL;
  uint32_t *rowIds, *index;
  size_t nRowIds, nIndex;
  int64_t size;
  if (!get_u32(env, argv[0], "rowIds", &rowIds, &nRowIds) || !get_int(env, argv[1], "size", &size) || !get_u32(env, argv[2], "index", &index, &nIndex))
    return NULL;
  const size_t cap = nIndex / 3;
  if (nIndex % 3 != 0 || cap == 0 || (cap & (cap - 1)) != 0 || cap > 0x80000000u || size < 0 || (uint64_t)size * 2 > nRowIds ||
      (uint64_t)size * 10 > (uint64_t)cap * 7) {
    throw_range(env, "rehashIndex: %lld rows (rowIds %zu words) into an index of %zu words: expected 3 x a power of two holding them under a load of 0.7",
                (long long)size, nRowIds, nIndex);
    return NULL;
  }
  const uint32_t mask = (uint32_t)(cap - 1);
  for (int64_t r = 0; r < size; r++) {
    const uint32_t lo = rowIds[2 * r], hi = rowIds[2 * r + 1];
    uint32_t at = id_home(lo, hi, mask);
    /* A full circle at most: the index may share memory with rowIds, so its free slots are not taken on trust. */
    uint64_t probes = 0;
    while (index[3 * (size_t)at + 2] != 0 && probes++ <= mask) at = (at + 1) & mask;
    if (probes > mask) {
      throw_range(env, "rehashIndex: no free slot for row %lld", (long long)r);
      return NULL;
    }
    uint32_t *e = index + 3 * (size_t)at;
    e[0] = lo;
    e[1] = hi;
    e[2] = (uint32_t)(r + 1);
  }
  return NULL;
}

/*
 * insertRows(index, rowIds, weights, state, lastUpdate, size, dim, statePattern, initKind, initValue, seedHash, now,
 *            ids, count, tables, table, rows):
 * EmbeddingTable.findOrInsert for many ids of one table: id i is taken when tables[i] == table and rows[i] < 0, in
 * request order; an id inserted earlier in the call is found, not inserted twice. A new row r = size++ gets the id's
 * words in rowIds, its weights from the initializer (initKind 0: every weight initValue; 1: uniform in
 * +-initValue, mulberry32 seeded with the id's hash, continuing seedHash (kit's hashWords(seed, lo, hi)), the
 * JavaScript's operations and order, so the same bits), statePattern as its optimizer state and `now` as its
 * stamp; rows[i] is set to the row. Returns the new size; or, at an id that would pass the index's load of 0.7 or the
 * slabs' rows, -(size + 1) with the ids before it done: the caller grows the table and calls again.
 */
static napi_value insert_rows(napi_env env, napi_callback_info info) {
  napi_value argv[17];
  if (!get_args(env, info, 17, argv, "insertRows: expected 17 arguments")) return NULL;
  uint32_t *index, *rowIds, *last, *ids;
  float *weights, *state, *pattern;
  int32_t *tables, *rows;
  size_t nIndex, nRowIds, nWeights, nState, nLast, nPattern, nIds, nTables, nRows;
  int64_t size, dim, initKind, seedHash, now, count, table;
  double initValue;
  if (!get_u32(env, argv[0], "index", &index, &nIndex) || !get_u32(env, argv[1], "rowIds", &rowIds, &nRowIds) ||
      !get_f32(env, argv[2], "weights", &weights, &nWeights) || !get_f32(env, argv[3], "state", &state, &nState) ||
      !get_u32(env, argv[4], "lastUpdate", &last, &nLast) || !get_int(env, argv[5], "size", &size) || !get_int(env, argv[6], "dim", &dim) ||
      !get_f32(env, argv[7], "statePattern", &pattern, &nPattern) || !get_int(env, argv[8], "initKind", &initKind) ||
      !get_double(env, argv[9], "initValue", &initValue) || !get_int(env, argv[10], "seedHash", &seedHash) || !get_int(env, argv[11], "now", &now) ||
      !get_u32(env, argv[12], "ids", &ids, &nIds) || !get_int(env, argv[13], "count", &count) || !get_i32(env, argv[14], "tables", &tables, &nTables) ||
      !get_int(env, argv[15], "table", &table) || !get_i32(env, argv[16], "rows", &rows, &nRows))
    return NULL;
  const size_t cap = nIndex / 3;
  if (nIndex % 3 != 0 || cap == 0 || (cap & (cap - 1)) != 0 || cap > 0x80000000u) {
    throw_range(env, "insertRows: index has %zu words, expected 3 x a power of two", nIndex);
    return NULL;
  }
  if (dim < 1 || dim > INT32_MAX || count < 0 || (uint64_t)count * 2 > nIds || (uint64_t)count > nTables || (uint64_t)count > nRows || initKind < 0 ||
      initKind > 1 || seedHash < 0 || seedHash > UINT32_MAX || now < 0 || now > UINT32_MAX || table < 0 || table > INT32_MAX) {
    throw_range(env, "insertRows: dim %lld, count %lld (ids %zu words, tables %zu, rows %zu), initKind %lld, seedHash %lld, now %lld, table %lld out of range",
                (long long)dim, (long long)count, nIds, nTables, nRows, (long long)initKind, (long long)seedHash, (long long)now, (long long)table);
    return NULL;
  }
  /* The rows the slabs hold: every slab must have room for them. */
  const uint64_t rowCap = nLast;
  if (size < 0 || (uint64_t)size > rowCap || nRowIds < rowCap * 2 || nWeights / (uint64_t)dim < rowCap || (nPattern && nState / nPattern < rowCap) ||
      rowCap > INT32_MAX) {
    throw_range(env, "insertRows: size %lld of %llu rows; rowIds %zu words, weights %zu, state %zu (%zu a row)", (long long)size, (unsigned long long)rowCap,
                nRowIds, nWeights, nState, nPattern);
    return NULL;
  }
  const uint32_t mask = (uint32_t)(cap - 1);
  const float fill = (float)initValue;
  const double range = initValue;
  int64_t n = size;
  for (int64_t i = 0; i < count; i++) {
    /* Read once: rows, tables and ids may share memory with what this loop writes. */
    if (tables[i] != (int32_t)table || rows[i] >= 0) continue;
    const uint32_t lo = ids[2 * i], hi = ids[2 * i + 1];
    uint32_t at = id_home(lo, hi, mask);
    int64_t found = -1, empty = -1;
    for (uint64_t probes = 0; probes <= mask; probes++) {
      const uint32_t *e = index + 3 * (size_t)at;
      if (e[2] == 0) {
        empty = at;
        break;
      }
      if (e[0] == lo && e[1] == hi) {
        found = (int64_t)e[2] - 1;
        break;
      }
      at = (at + 1) & mask;
    }
    if (found >= 0) {
      rows[i] = found > INT32_MAX ? -1 : (int32_t)found;
      continue;
    }
    /* No room: the caller grows the table as findOrInsert would, and calls again (what is done stays done). */
    if (empty < 0 || (uint64_t)n >= rowCap || (uint64_t)(n + 1) * 10 > (uint64_t)cap * 7) {
      napi_value out;
      CHECK(napi_create_int64(env, -(n + 1), &out));
      return out;
    }
    uint32_t *e = index + 3 * (size_t)empty;
    e[0] = lo;
    e[1] = hi;
    e[2] = (uint32_t)(n + 1);
    rowIds[2 * n] = lo;
    rowIds[2 * n + 1] = hi;
    float *w = weights + (size_t)n * (size_t)dim;
    if (initKind == 0) {
      for (int64_t k = 0; k < dim; k++) w[k] = fill;
    } else {
      uint32_t h = mix32((((uint32_t)seedHash) ^ lo) + 0x7f4a7c15u);
      uint32_t st = mix32((h ^ hi) + 0x7f4a7c15u);
      for (int64_t k = 0; k < dim; k++) {
        st += 0x6d2b79f5u;
        uint32_t t = st;
        t = (t ^ (t >> 15)) * (t | 1u);
        t ^= t + (t ^ (t >> 7)) * (t | 61u);
        const double u = (double)(t ^ (t >> 14)) / 4294967296.0;
        w[k] = (float)(-range + (range - -range) * u);
      }
    }
    if (nPattern) memmove(state + (size_t)n * nPattern, pattern, nPattern * sizeof(float));
    last[n] = (uint32_t)now;
    rows[i] = (int32_t)n;
    n++;
  }
  napi_value out;
  CHECK(napi_create_int64(env, n, &out));
  return out;
}

/*
 * adagradRows(w, state, lastUpdate, dim, rows, count, sums, workers, lr, wd, now):
 * the sparse Adagrad of services/orchestrator (sparse-optimizers) on `count`
 * rows of one table: row rows[i] takes g = sums[i * dim + k] / workers
 * (rounded to float, as the JavaScript stores it), g' = g + wd w,
 * n = state + g'^2, state = n, w -= lr g' / sqrt(n), in double precision with
 * each stored result rounded to float, the operations and order of the
 * JavaScript version (the same bits; C11 mode, no contraction); its last
 * update is stamped `now`. Every row is checked before one is changed.
 */
static napi_value adagrad_rows(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  if (!get_args(env, info, 11, argv, "adagradRows: expected 11 arguments")) return NULL;
  float *w, *state, *sums;
  uint32_t *last;
  int32_t *rows;
  size_t nw, ns, nl, nr, ng;
  int64_t dim, count, now;
  double workers, lr, wd;
  if (!get_f32(env, argv[0], "w", &w, &nw) || !get_f32(env, argv[1], "state", &state, &ns) || !get_u32(env, argv[2], "lastUpdate", &last, &nl) ||
      !get_int(env, argv[3], "dim", &dim) || !get_i32(env, argv[4], "rows", &rows, &nr) || !get_int(env, argv[5], "count", &count) ||
      !get_f32(env, argv[6], "sums", &sums, &ng) || !get_double(env, argv[7], "workers", &workers) || !get_double(env, argv[8], "lr", &lr) ||
      !get_double(env, argv[9], "wd", &wd) || !get_int(env, argv[10], "now", &now))
    return NULL;
  if (dim < 1 || dim > INT32_MAX || count < 0 || (uint64_t)count > nr || (uint64_t)count > ng / (uint64_t)dim || now < 0 || now > UINT32_MAX) {
    throw_range(env, "adagradRows: dim %lld, count %lld: rows needs count entries (%zu), sums count x dim (%zu); now %lld", (long long)dim, (long long)count, nr, ng,
                (long long)now);
    return NULL;
  }
  for (int64_t i = 0; i < count; i++) {
    uint64_t end = ((uint64_t)(uint32_t)rows[i] + 1) * (uint64_t)dim;
    if (rows[i] < 0 || end > nw || end > ns || (size_t)rows[i] >= nl) {
      throw_range(env, "adagradRows: row %d is outside the table (%zu weights, %zu state, %zu stamps)", rows[i], nw, ns, nl);
      return NULL;
    }
  }
  /* Four lanes: avx2_for's check of the CPU (D 8 passes it for any dim). */
  const int vector = avx2_for(8);
  for (int64_t i = 0; i < count; i++) {
    int64_t k = i + ID_PREFETCH;
    if (k < count) {
      const int32_t rk = rows[k];
      if (rk >= 0 && ((uint64_t)rk + 1) * (uint64_t)dim <= nw && ((uint64_t)rk + 1) * (uint64_t)dim <= ns) {
        __builtin_prefetch(w + (size_t)rk * dim, 1);
        __builtin_prefetch(state + (size_t)rk * dim, 1);
      }
    }
    /* Read once and checked again here: the arrays may share memory, and writing a row or its stamp may change rows[]. */
    const int32_t row = rows[i];
    const uint64_t end = ((uint64_t)(uint32_t)row + 1) * (uint64_t)dim;
    if (row < 0 || end > nw || end > ns || (size_t)row >= nl) {
      throw_range(env, "adagradRows: row %d is outside the table (%zu weights, %zu state, %zu stamps)", row, nw, ns, nl);
      return NULL;
    }
    float *wr = w + (size_t)row * dim, *sr = state + (size_t)row * dim;
    const float *g = sums + (size_t)i * dim;
    for (int64_t d = vector ? adagrad_row_avx2(wr, sr, g, dim, workers, lr, wd) : 0; d < dim; d++) {
      const float mean = (float)((double)g[d] / workers);
      const double gi = (double)mean + wd * (double)wr[d];
      const double n = (double)sr[d] + gi * gi;
      sr[d] = (float)n;
      wr[d] = (float)((double)wr[d] - (lr * gi) / sqrt(n));
    }
    last[row] = (uint32_t)now;
  }
  return NULL;
}

/*
 * accumulateRows(slots, sums, counts, widthOfSlot, ids, tables, rows, count, grads, maxAbs, progress):
 * a push's row gradients added into a step's per-table sums (services/orchestrator, SparseSums). Id i
 * (word pairs in ids; its table tables[i] and row rows[i], findRows' answers) owns the next
 * widthOfSlot[its slot] values of grads. An id without a row (rows[i] < 0) is passed over; one with a
 * value that is NaN or above maxAbs in magnitude is refused: counted in progress[2], passed over.
 * Table t's sums: slots[2t] maps a row to its place among the rows summed so far (-1: none),
 * slots[2t + 1] lists those rows in first-touch order, counts[t] of them; sums[t] holds their
 * sums, a row's width each, zeroed when a row is first touched. Float sums in id order: the bits of
 * the JavaScript loop. Resumable: starts at id progress[0], grads offset progress[1]; if table t
 * has no room for a row (slots[2t] too short for it, or slots[2t + 1] or sums[t] full), stops
 * before that id with progress[3] = t (the caller grows them and calls again), else progress[3] = -1.
 */
static napi_value accumulate_rows(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  if (!get_args(env, info, 11, argv, "accumulateRows: expected 11 arguments")) return NULL;
  napi_value *slotElements, *sumElements;
  uint32_t nSlotLists, nSums;
  /* Two lists a table, a table a slot at most. */
  if (!get_elements(env, argv[0], "slots", "an Int32Array", 2 * V2_SLOTS, &slotElements, &nSlotLists)) return NULL;
  if (!get_elements(env, argv[1], "sums", "a Float32Array", V2_SLOTS, &sumElements, &nSums)) {
    free(slotElements);
    return NULL;
  }
  void **slotPtrs = NULL, **sumPtrs = NULL;
  size_t *slotLens = NULL, *sumLens = NULL;
  int ok = typed_addresses(env, slotElements, nSlotLists, "slots", napi_int32_array, "an Int32Array", &slotPtrs, &slotLens) &&
           typed_addresses(env, sumElements, nSums, "sums", napi_float32_array, "a Float32Array", &sumPtrs, &sumLens);
  free(slotElements);
  free(sumElements);
  if (!ok) {
    free(slotPtrs);
    free(sumPtrs);
    return NULL;
  }
  int32_t *counts, *widthOfSlot, *tables, *rows, *progress;
  uint32_t *ids;
  float *grads;
  size_t nCounts, nWidths, nIds, nTables, nRows, nGrads, nProgress;
  int64_t count;
  double maxAbs;
  if (!get_i32(env, argv[2], "counts", &counts, &nCounts) || !get_i32(env, argv[3], "widthOfSlot", &widthOfSlot, &nWidths) || !get_u32(env, argv[4], "ids", &ids, &nIds) ||
      !get_i32(env, argv[5], "tables", &tables, &nTables) || !get_i32(env, argv[6], "rows", &rows, &nRows) || !get_int(env, argv[7], "count", &count) ||
      !get_f32(env, argv[8], "grads", &grads, &nGrads) || !get_double(env, argv[9], "maxAbs", &maxAbs) || !get_i32(env, argv[10], "progress", &progress, &nProgress)) {
    free(slotPtrs);
    free(sumPtrs);
    return NULL;
  }
  const uint32_t nT = nSums;
  if (nSlotLists != 2 * nT || nCounts < nT || nWidths < V2_SLOTS || count < 0 || (uint64_t)count * 2 > nIds || (uint64_t)count > nTables ||
      (uint64_t)count > nRows || nProgress < 4) {
    throw_range(env, "accumulateRows: %u tables need 2 x as many slots lists (%u) and counts (%zu); widthOfSlot %d entries (%zu); ids 2 x count words (%zu for %lld), tables and rows count entries (%zu, %zu); progress 4 (%zu)",
                nT, nSlotLists, nCounts, V2_SLOTS, nWidths, nIds, (long long)count, nTables, nRows, nProgress);
    free(slotPtrs);
    free(sumPtrs);
    return NULL;
  }
  int64_t i = progress[0], at = progress[1];
  int32_t rejected = progress[2], stop = -1;
  if (i < 0 || at < 0) {
    throw_range(env, "accumulateRows: progress starts at id %lld, value %lld", (long long)i, (long long)at);
    free(slotPtrs);
    free(sumPtrs);
    return NULL;
  }
  /* Every value is read once into a local and every place checked before it is written: the arrays may share memory. */
  for (; i < count; i++) {
    const int32_t w = widthOfSlot[V2_SLOT_OF(ids[2 * i + 1])];
    if (w < 1 || (uint64_t)at + (uint64_t)w > nGrads) {
      throw_range(env, "accumulateRows: id %lld's %d gradient values from %lld are outside grads' %zu", (long long)i, w, (long long)at, nGrads);
      free(slotPtrs);
      free(sumPtrs);
      return NULL;
    }
    const float *g = grads + at;
    const int32_t row = rows[i], t = tables[i];
    if (row < 0) {
      at += w;
      continue;
    }
    if (t < 0 || (uint32_t)t >= nT) {
      throw_range(env, "accumulateRows: id %lld has row %d of table %d, outside the %u tables", (long long)i, row, t, nT);
      free(slotPtrs);
      free(sumPtrs);
      return NULL;
    }
    int refused = 0;
    for (int32_t k = 0; k < w; k++)
      if (!(fabs((double)g[k]) <= maxAbs)) {
        refused = 1;
        break;
      }
    if (refused) {
      rejected++;
      at += w;
      continue;
    }
    int32_t *rowSlot = (int32_t *)slotPtrs[2 * t], *touched = (int32_t *)slotPtrs[2 * t + 1];
    const size_t nRowSlot = slotLens[2 * t], nTouched = slotLens[2 * t + 1], nSum = sumLens[t];
    if ((size_t)row >= nRowSlot) {
      stop = t;
      break;
    }
    int32_t place = rowSlot[row];
    const int32_t c = counts[t];
    if (c < 0 || (place >= 0 && place >= c)) {
      throw_range(env, "accumulateRows: table %d's row %d is at place %d of %d summed rows", t, row, place, c);
      free(slotPtrs);
      free(sumPtrs);
      return NULL;
    }
    float *sum;
    if (place < 0) {
      if ((size_t)c >= nTouched || ((uint64_t)c + 1) * (uint64_t)w > nSum) {
        stop = t;
        break;
      }
      sum = (float *)sumPtrs[t] + (size_t)c * (size_t)w;
      memset(sum, 0, (size_t)w * sizeof(float));
      touched[c] = row;
      rowSlot[row] = c;
      counts[t] = c + 1;
    } else {
      if (((uint64_t)place + 1) * (uint64_t)w > nSum) {
        throw_range(env, "accumulateRows: table %d's place %d (%d floats) is outside its %zu sums", t, place, w, nSum);
        free(slotPtrs);
        free(sumPtrs);
        return NULL;
      }
      sum = (float *)sumPtrs[t] + (size_t)place * (size_t)w;
    }
    /* g was checked against grads' length above; the sums were zeroed first if new (g may be in them: shared memory). */
    for (int32_t k = 0; k < w; k++) sum[k] += g[k];
    at += w;
  }
  progress[0] = (int32_t)i;
  progress[1] = (int32_t)at;
  progress[2] = rejected;
  progress[3] = stop;
  free(slotPtrs);
  free(sumPtrs);
  return NULL;
}

/*
 * dedupIds(words, count, table, unique, inverse): the unique ids of count
 * (lo, hi) word pairs in first-seen order into unique (word pairs), and
 * each id's index among them into inverse; returns how many are unique.
 * table is scratch: 3 words a slot (lo, hi, index + 1; cleared here), a
 * power-of-two number of slots more than count (the trainer's IdDeduper,
 * same hash: the same answer as its JavaScript loop).
 */
static napi_value dedup_ids(napi_env env, napi_callback_info info) {
  napi_value argv[5], result;
  if (!get_args(env, info, 5, argv, "dedupIds: expected 5 arguments")) return NULL;
  uint32_t *words, *table, *unique;
  int32_t *inverse;
  size_t nWords, nTable, nUnique, nInverse;
  int64_t count;
  if (!get_u32(env, argv[0], "words", &words, &nWords) || !get_int(env, argv[1], "count", &count) || !get_u32(env, argv[2], "table", &table, &nTable) ||
      !get_u32(env, argv[3], "unique", &unique, &nUnique) || !get_i32(env, argv[4], "inverse", &inverse, &nInverse))
    return NULL;
  size_t cap = nTable / 3;
  if (count < 0 || (uint64_t)count * 2 > nWords || (uint64_t)count * 2 > nUnique || (uint64_t)count > nInverse || nTable % 3 != 0 || cap == 0 ||
      (cap & (cap - 1)) != 0 || cap <= (uint64_t)count || cap > 0x80000000u) {
    throw_range(env, "dedupIds: %lld ids need 2 x count words (%zu), unique 2 x count (%zu), inverse count (%zu), a table of 3 x a power of two > count slots (%zu words)",
                (long long)count, nWords, nUnique, nInverse, nTable);
    return NULL;
  }
  memset(table, 0, nTable * sizeof(uint32_t));
  const uint32_t mask = (uint32_t)(cap - 1);
  uint32_t u = 0;
  for (int64_t i = 0; i < count; i++) {
    const uint32_t lo = words[2 * i], hi = words[2 * i + 1];
    uint32_t at = id_home(lo, hi, mask);
    /* More ids than slots only if an output shares the table's memory: a full circle ends the search. */
    for (uint64_t probes = 0;; probes++) {
      if (probes > mask) {
        throw_range(env, "dedupIds: the table is full at id %lld (does an output share its memory?)", (long long)i);
        return NULL;
      }
      uint32_t *e = table + 3 * (size_t)at;
      if (e[2] == 0) {
        e[0] = lo;
        e[1] = hi;
        e[2] = u + 1;
        unique[2 * (size_t)u] = lo;
        unique[2 * (size_t)u + 1] = hi;
        inverse[i] = (int32_t)u++;
        break;
      }
      if (e[0] == lo && e[1] == hi) {
        inverse[i] = (int32_t)(e[2] - 1);
        break;
      }
      at = (at + 1) & mask;
    }
  }
  CHECK(napi_create_uint32(env, u, &result));
  return result;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "setThreads: expected 1 argument")) return NULL;
  int64_t n;
  if (!get_int(env, argv[0], "threads", &n)) return NULL;
  if (n < 1 || n > 1024) {
    napi_throw_range_error(env, "PANGEA_BLAS_ERR_RANGE", "threads: expected 1..1024");
    return NULL;
  }
  openblas_set_num_threads((int)n);
  return NULL;
}

static napi_value get_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_int32(env, openblas_get_num_threads(), &out));
  return out;
}

static napi_value get_config(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_string_utf8(env, openblas_get_config(), NAPI_AUTO_LENGTH, &out));
  return out;
}

/*
 * poolCells(keys, slots, rows, dims, pooling, ids, offsets, count, slotAt, out):
 * serving's embedding pooling (services/serving's Scorer and RowTable), for
 * `count` examples of S = dims.length columns. Column k's table is open
 * addressing: bucket b holds row slots[k][b] (-1 empty, -2 removed) of the id
 * (keys[k][2b], keys[k][2b+1]), rows[k] holding rows of dims[k] floats; an
 * id's first bucket is RowTable's hash. Cell c = e * S + k holds the ids
 * offsets[c] .. offsets[c + 1] of ids (offsets null: id c alone). Writes
 * out[e * E + slotAt[k] ..] (E = slotAt[S], dims[k] floats) = the sum of its
 * ids' rows ((0, 0) skipped; an id not found adds nothing but counts toward
 * a mean), times 1/n (mean, pooling[k] 1) or 1/sqrt(n) (sqrtn, 2) when n > 1
 * ids were given, in double rounded to float: the bits of the JavaScript loop.
 */
static napi_value pool_cells(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  if (!get_args(env, info, 10, argv, "poolCells: expected 10 arguments")) return NULL;
  napi_value *keyElements = NULL, *slotElements = NULL, *rowElements = NULL;
  uint32_t nKeys = 0, nSlotLists = 0, nRowLists = 0;
  if (!get_elements(env, argv[0], "keys", "a Uint32Array", V2_SLOTS, &keyElements, &nKeys)) return NULL;
  if (!get_elements(env, argv[1], "slots", "an Int32Array", V2_SLOTS, &slotElements, &nSlotLists)) {
    free(keyElements);
    return NULL;
  }
  if (!get_elements(env, argv[2], "rows", "a Float32Array", V2_SLOTS, &rowElements, &nRowLists)) {
    free(keyElements);
    free(slotElements);
    return NULL;
  }
  void **keyPtrs = NULL, **slotPtrs = NULL, **rowPtrs = NULL;
  int32_t *local = NULL;
  size_t *keyLens = NULL, *slotLens = NULL, *rowLens = NULL;
  int ok = typed_addresses(env, keyElements, nKeys, "keys", napi_uint32_array, "a Uint32Array", &keyPtrs, &keyLens) &&
           typed_addresses(env, slotElements, nSlotLists, "slots", napi_int32_array, "an Int32Array", &slotPtrs, &slotLens) &&
           typed_addresses(env, rowElements, nRowLists, "rows", napi_float32_array, "a Float32Array", &rowPtrs, &rowLens);
  free(keyElements);
  free(slotElements);
  free(rowElements);
#define POOL_FAIL()   \
  do {                \
    free(keyPtrs);    \
    free(slotPtrs);   \
    free(rowPtrs);    \
    free(local);      \
    return NULL;      \
  } while (0)
  if (!ok) POOL_FAIL();
  int32_t *callerDims, *callerPooling, *callerSlotAt;
  uint32_t *ids, *offsets = NULL;
  float *out;
  size_t nDims, nPooling, nIds, nOffsets = 0, nSlotAt, nOut;
  int64_t count;
  napi_valuetype offsetsType;
  if (napi_typeof(env, argv[6], &offsetsType) != napi_ok) POOL_FAIL();
  /* An empty Uint32Array has no data pointer: whether offsets were given is the argument's type, not the pointer. */
  const int bags = offsetsType != napi_null;
  if (!get_i32(env, argv[3], "dims", &callerDims, &nDims) || !get_i32(env, argv[4], "pooling", &callerPooling, &nPooling) || !get_u32(env, argv[5], "ids", &ids, &nIds) ||
      (bags && !get_u32(env, argv[6], "offsets", &offsets, &nOffsets)) || !get_int(env, argv[7], "count", &count) ||
      !get_i32(env, argv[8], "slotAt", &callerSlotAt, &nSlotAt) || !get_f32(env, argv[9], "out", &out, &nOut))
    POOL_FAIL();
  const int64_t S = (int64_t)nDims;
  if (S < 1 || nKeys != S || nSlotLists != S || nRowLists != S || (int64_t)nPooling < S || (int64_t)nSlotAt < S + 1 || count < 0) {
    throw_range(env, "poolCells: %lld columns (dims) need as many keys, slots and rows lists (%u, %u, %u) and pooling entries (%zu), slotAt %lld + 1 (%zu); count %lld",
                (long long)S, nKeys, nSlotLists, nRowLists, nPooling, (long long)S, nSlotAt, (long long)count);
    POOL_FAIL();
  }
  /* The columns' widths, places and poolings copied before they are checked: `out` may share memory with the
   * caller's arrays, and a write to it must not move a later cell's place or widen its width past the checks. */
  local = (int32_t *)malloc((size_t)(3 * S + 1) * sizeof(int32_t));
  if (!local) {
    napi_throw_error(env, "PANGEA_BLAS_ERR_NAPI", "out of memory");
    POOL_FAIL();
  }
  int32_t *const dims = local, *const pooling = local + S, *const slotAt = local + 2 * S;
  memcpy(dims, callerDims, (size_t)S * sizeof(int32_t));
  memcpy(pooling, callerPooling, (size_t)S * sizeof(int32_t));
  memcpy(slotAt, callerSlotAt, (size_t)(S + 1) * sizeof(int32_t));
  const int64_t E = slotAt[S];
  int64_t cells = 0, width = 0;
  if (E < 0 || __builtin_mul_overflow(count, S, &cells) || __builtin_mul_overflow(count, E, &width) || width > (int64_t)nOut ||
      (bags ? cells >= (int64_t)nOffsets : cells > (int64_t)nIds / 2)) {
    throw_range(env, "poolCells: %lld examples of %lld columns (%lld floats each) need out %lld x %lld floats (has %zu), %s (has %zu)", (long long)count, (long long)S,
                (long long)E, (long long)count, (long long)E, nOut, bags ? "offsets count x columns + 1 entries" : "ids 2 words a cell", bags ? nOffsets : nIds);
    POOL_FAIL();
  }
  for (int64_t k = 0; k < S; k++) {
    const size_t buckets = slotLens[k];
    if (dims[k] < 0 || slotAt[k] < 0 || (int64_t)slotAt[k] + dims[k] > E || buckets == 0 || (buckets & (buckets - 1)) != 0 || keyLens[k] < 2 * buckets ||
        (pooling[k] < 0 || pooling[k] > 2)) {
      throw_range(env, "poolCells: column %lld: width %d at %d of %lld, %zu buckets (a power of two) with %zu key words (2 a bucket), pooling %d (0 sum, 1 mean, 2 sqrtn)",
                  (long long)k, dims[k], slotAt[k], (long long)E, buckets, keyLens[k], pooling[k]);
      POOL_FAIL();
    }
  }
  memset(out, 0, (size_t)width * sizeof(float));
  /* Example by example, column by column: no division a cell (two 64-bit divisions were most of the loop's time). */
  for (int64_t e = 0, c = 0; e < count; e++)
  for (int64_t k = 0; k < S; k++, c++) {
    const int64_t from = bags ? offsets[c] : c, to = bags ? offsets[c + 1] : c + 1;
    if (from > to || to > (int64_t)nIds / 2) {
      throw_range(env, "poolCells: cell %lld's ids %lld..%lld are outside ids' %zu", (long long)c, (long long)from, (long long)to, nIds / 2);
      POOL_FAIL();
    }
    const uint32_t *keys = (const uint32_t *)keyPtrs[k];
    const int32_t *slots = (const int32_t *)slotPtrs[k];
    const float *rows = (const float *)rowPtrs[k];
    const uint32_t mask = (uint32_t)(slotLens[k] - 1);
    const int64_t D = dims[k];
    float *dst = out + e * E + slotAt[k];
    int64_t n = 0;
    for (int64_t v = from; v < to; v++) {
      const uint32_t lo = ids[2 * v], hi = ids[2 * v + 1];
      if (lo == 0 && hi == 0) continue;
      n++;
      uint32_t h = (lo ^ (hi * 0x9e3779b1u)) * 0x85ebca6bu;
      h ^= h >> 13;
      int32_t row = -1;
      uint32_t b = h & mask;
      for (uint64_t probes = 0; probes <= mask; probes++, b = (b + 1) & mask) {
        const int32_t r = slots[b];
        if (r == -1) break;
        if (r >= 0 && keys[2 * (size_t)b] == lo && keys[2 * (size_t)b + 1] == hi) {
          row = r;
          break;
        }
      }
      if (row < 0) continue;
      if (((int64_t)row + 1) * D > (int64_t)rowLens[k]) {
        throw_range(env, "poolCells: column %lld's table names row %d, beyond its %zu floats of %lld-wide rows", (long long)k, row, rowLens[k], (long long)D);
        POOL_FAIL();
      }
      /* Four lanes at a time (the compiler leaves the plain loop scalar: dst and src may be views of one buffer), then the rest. */
      const float *src = rows + (int64_t)row * D;
      int64_t q = 0;
      for (; q + 4 <= D; q += 4) store4(dst + q, load4(dst + q) + load4(src + q));
      for (; q < D; q++) dst[q] += src[q];
    }
    if (n > 1 && pooling[k] != 0) {
      const double f = pooling[k] == 1 ? 1.0 / (double)n : 1.0 / sqrt((double)n);
      for (int64_t q = 0; q < D; q++) dst[q] = (float)((double)dst[q] * f);
    }
  }
#undef POOL_FAIL
  free(keyPtrs);
  free(slotPtrs);
  free(rowPtrs);
  free(local);
  return NULL;
}

/* [seconds, flops] spent in gemm since load: lets a benchmark compare the
 * matmul work's rate with the machine's sgemm peak. */
static napi_value get_counters(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out, s, f;
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_double(env, total_seconds, &s));
  CHECK(napi_create_double(env, total_flops, &f));
  CHECK(napi_set_element(env, out, 0, s));
  CHECK(napi_set_element(env, out, 1, f));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"gemm", NULL, gemm, NULL, NULL, NULL, napi_default, NULL},
      {"gatherRows", NULL, gather_rows, NULL, NULL, NULL, napi_default, NULL},
      {"scatterAddRows", NULL, scatter_add_rows, NULL, NULL, NULL, napi_default, NULL},
      {"copyColumns", NULL, copy_columns, NULL, NULL, NULL, napi_default, NULL},
      {"fmForward", NULL, fm_forward, NULL, NULL, NULL, napi_default, NULL},
      {"fmGradient", NULL, fm_gradient, NULL, NULL, NULL, napi_default, NULL},
      {"addGated", NULL, add_gated, NULL, NULL, NULL, napi_default, NULL},
      {"gatherColumns", NULL, gather_columns, NULL, NULL, NULL, napi_default, NULL},
      {"scatterAddColumns", NULL, scatter_add_columns, NULL, NULL, NULL, napi_default, NULL},
      {"gateGradient", NULL, gate_gradient, NULL, NULL, NULL, napi_default, NULL},
      {"dotInteractionSplit", NULL, dot_interaction_split, NULL, NULL, NULL, napi_default, NULL},
      {"dotInteractionSplitGrad", NULL, dot_interaction_split_grad, NULL, NULL, NULL, napi_default, NULL},
      {"biasReluGrad", NULL, bias_relu_grad, NULL, NULL, NULL, napi_default, NULL},
      {"adagrad", NULL, adagrad, NULL, NULL, NULL, napi_default, NULL},
      {"addInto", NULL, add_into, NULL, NULL, NULL, napi_default, NULL},
      {"firstOutside", NULL, first_outside, NULL, NULL, NULL, napi_default, NULL},
      {"divideBy", NULL, divide_by, NULL, NULL, NULL, napi_default, NULL},
      {"findRows", NULL, find_rows, NULL, NULL, NULL, napi_default, NULL},
      {"readRows", NULL, read_rows, NULL, NULL, NULL, napi_default, NULL},
      {"insertRows", NULL, insert_rows, NULL, NULL, NULL, napi_default, NULL},
      {"rehashIndex", NULL, rehash_index, NULL, NULL, NULL, napi_default, NULL},
      {"adagradRows", NULL, adagrad_rows, NULL, NULL, NULL, napi_default, NULL},
      {"accumulateRows", NULL, accumulate_rows, NULL, NULL, NULL, napi_default, NULL},
      {"dedupIds", NULL, dedup_ids, NULL, NULL, NULL, napi_default, NULL},
      {"poolCells", NULL, pool_cells, NULL, NULL, NULL, napi_default, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_default, NULL},
      {"threads", NULL, get_threads, NULL, NULL, NULL, napi_default, NULL},
      {"config", NULL, get_config, NULL, NULL, NULL, napi_default, NULL},
      {"counters", NULL, get_counters, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
