// C++ baseline for `make bench` (benchmark code only, not part of Pangea):
// the same workload as services/orchestrator/src/bench/embedding-table.ts, on
// absl::flat_hash_map<uint64_t, uint32_t> (id -> row) with rows and Adagrad
// state in flat float vectors. Prints one JSON line per measurement.
// Usage: flat_hash_map_bench ROWS DIM BATCHES BATCH_SIZE
#include <absl/container/flat_hash_map.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

// mix32: Pangea's id mix, shared with the addon (bench-tables.mjs passes its include path).
#include "id-hash.h"

// The i-th id of the workload: two mixed 32-bit halves, top bit clear.
static uint64_t id_of(uint32_t i) {
  uint32_t lo = mix32(i ^ 0x9e3779b9u);
  uint32_t hi = mix32(i + 0x7f4a7c15u) & 0x7fffffffu;
  return (uint64_t(hi) << 32) | lo;
}

struct Mulberry {
  uint32_t s;
  double next() {
    uint32_t t = (s += 0x6d2b79f5u);
    t = (t ^ (t >> 15)) * (t | 1u);
    t ^= t + (t ^ (t >> 7)) * (t | 61u);
    return double(t ^ (t >> 14)) / 4294967296.0;
  }
};

static double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s ROWS DIM BATCHES BATCH_SIZE\n", argv[0]);
    return 2;
  }
  const uint32_t rows = std::strtoul(argv[1], nullptr, 10);
  const int dim = std::atoi(argv[2]);
  const int batches = std::atoi(argv[3]);
  const int batch = std::atoi(argv[4]);
  absl::flat_hash_map<uint64_t, uint32_t> index;
  std::vector<float> weights, accum;
  index.reserve(1024);
  auto t = std::chrono::steady_clock::now();
  for (uint32_t i = 0; i < rows; i++) {
    auto [it, inserted] = index.try_emplace(id_of(i), uint32_t(index.size()));
    if (inserted) {
      for (int k = 0; k < dim; k++) weights.push_back(0.01f * float(k));
      for (int k = 0; k < dim; k++) accum.push_back(0.1f);
    }
  }
  std::printf("{\"impl\":\"c++ absl::flat_hash_map\",\"op\":\"insert\",\"dim\":%d,\"rows\":%u,\"perSec\":%.0f}\n", dim, rows, rows / seconds_since(t));

  // Zipf-like ids (log-uniform ranks), the same stream as the TypeScript side.
  std::vector<uint64_t> stream(size_t(batches) * batch);
  Mulberry rng{12345};
  for (auto& id : stream) id = id_of(uint32_t(std::floor(std::pow(double(rows), rng.next()))) - 1);

  std::vector<float> out(size_t(batch) * dim);
  double sink = 0;
  t = std::chrono::steady_clock::now();
  for (int b = 0; b < batches; b++) {
    for (int j = 0; j < batch; j++) {
      auto it = index.find(stream[size_t(b) * batch + j]);
      const float* w = &weights[size_t(it->second) * dim];
      for (int k = 0; k < dim; k++) out[size_t(j) * dim + k] = w[k];
    }
    sink += out[0];
  }
  double n = double(batches) * batch;
  std::printf("{\"impl\":\"c++ absl::flat_hash_map\",\"op\":\"lookup\",\"dim\":%d,\"rows\":%u,\"perSec\":%.0f,\"sink\":%g}\n", dim, rows, n / seconds_since(t), sink);

  std::vector<float> grad(dim, 0.001f);
  const float lr = 0.05f;
  t = std::chrono::steady_clock::now();
  for (int b = 0; b < batches; b++) {
    for (int j = 0; j < batch; j++) {
      auto it = index.find(stream[size_t(b) * batch + j]);
      float* w = &weights[size_t(it->second) * dim];
      float* a = &accum[size_t(it->second) * dim];
      for (int k = 0; k < dim; k++) {
        a[k] += grad[k] * grad[k];
        w[k] -= lr * grad[k] / std::sqrt(a[k]);
      }
    }
  }
  std::printf("{\"impl\":\"c++ absl::flat_hash_map\",\"op\":\"apply_gradients\",\"dim\":%d,\"rows\":%u,\"perSec\":%.0f,\"sink\":%g}\n", dim, rows, n / seconds_since(t), double(weights[0]));
  return 0;
}
