// Metrics: contention-free counters and histograms for the hot path, and the Prometheus text
// exposition (format 0.0.4) written from them at scrape time.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/shard.hpp"

namespace wakegate::metrics {

// A counter with one cache-line-sized slot per shard; add() writes only the caller's slot
// (relaxed atomics, one writer per slot), value() sums them.
class counter {
 public:
  void add(std::uint64_t v = 1) noexcept {
    auto& s = slots_[this_shard].v;
    s.store(s.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  }
  std::uint64_t value() const noexcept;

 private:
  struct alignas(64) slot {
    std::atomic<std::uint64_t> v{0};
  };
  std::array<slot, max_shards> slots_{};
};

// A gauge that several threads move up and down, sharded like counter.
class sharded_gauge {
 public:
  void add(std::int64_t v) noexcept {
    auto& s = slots_[this_shard].v;
    s.store(s.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  }
  std::int64_t value() const noexcept;

 private:
  struct alignas(64) slot {
    std::atomic<std::int64_t> v{0};
  };
  std::array<slot, max_shards> slots_{};
};

struct histogram_snapshot {
  std::vector<double> bounds;         // upper bounds, ascending, without +Inf
  std::vector<std::uint64_t> counts;  // cumulative, bounds.size() + 1 entries (last = +Inf = count)
  double sum = 0;
  std::uint64_t count = 0;
};

// A histogram with fixed upper bounds (at most max_bounds, ascending, finite), sharded like
// counter: observe() writes only the caller's shard block, snapshot() sums the blocks.
class histogram {
 public:
  static constexpr std::size_t max_bounds = 31;

  // Throws std::invalid_argument if the bounds are too many, not finite or not ascending.
  explicit histogram(std::span<const double> bounds);
  ~histogram();
  histogram(const histogram&) = delete;
  histogram& operator=(const histogram&) = delete;

  void observe(double v) noexcept;
  histogram_snapshot snapshot() const;
  std::span<const double> bounds() const noexcept { return bounds_; }

 private:
  struct shard_data;
  std::vector<double> bounds_;
  // shard_count blocks (as set when the histogram is made): 320 B each, so per app about 1 KiB per
  // histogram with 2 workers, where max_shards blocks took 21 KiB (found by black-box testing:
  // 150 KiB of RSS per configured app).
  std::size_t shard_n_;
  std::unique_ptr<shard_data[]> shards_;
};

// Latency buckets in seconds (Prometheus' defaults extended down to 0.5 ms and up to 60 s).
std::span<const double> latency_buckets();

using label = std::pair<std::string_view, std::string_view>;

// Writes the text exposition. Call family() once per metric family, then its samples.
// Label values are escaped (\\, \", \n); numbers are written so that promtool accepts them.
class text_writer {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, std::initializer_list<label> labels, double value);
  void sample(std::string_view name, std::span<const label> labels, double value);
  // Writes name_bucket{...,le="..."} lines, name_sum and name_count.
  void histogram(std::string_view name, std::span<const label> labels, const histogram_snapshot& h);
  const std::string& str() const noexcept { return out_; }
  std::string take() noexcept { return std::exchange(out_, std::string{}); }  // leaves str() empty

 private:
  std::string out_;
};

}  // namespace wakegate::metrics
