// Exact, time-weighted in-flight measurement without contention.
//
// Each proxy thread owns one slot per app and is its only writer: on every request start and end
// it adds in_flight * elapsed to the slot's running integral. The control plane reads every slot
// (a sequence counter makes each read consistent) and derives the average concurrency over any
// window as (integral(t1) - integral(t0)) / (t1 - t0). Nothing is sampled.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "common/shard.hpp"
#include "common/time.hpp"

namespace wakegate::scaler {

class concurrency_meter {
 public:
  // Writer side (the calling thread's own slot).
  void add(std::int64_t delta, std::int64_t now) noexcept {
    auto& s = slots_[this_shard];
    auto seq = s.seq.load(std::memory_order_relaxed);
    s.seq.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    auto in_flight = s.in_flight.load(std::memory_order_relaxed);
    auto last = s.last_ns.load(std::memory_order_relaxed);
    s.area.store(s.area.load(std::memory_order_relaxed) + in_flight * (now - last), std::memory_order_relaxed);
    s.last_ns.store(now, std::memory_order_relaxed);
    s.in_flight.store(in_flight + delta, std::memory_order_relaxed);
    if (delta > 0) s.arrivals.store(s.arrivals.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    s.seq.store(seq + 2, std::memory_order_release);
  }

  struct reading {
    std::int64_t in_flight = 0;   // right now
    double area = 0;              // integral of in-flight over time, in request-seconds
    std::uint64_t arrivals = 0;   // requests started, ever
    std::int64_t last_change_ns = 0;  // the latest start or end (now_ns clock); with in_flight 0, the last end
  };

  // Reader side (any thread): the sum over all slots as of `now`.
  reading read(std::int64_t now) const noexcept {
    reading r;
    std::int64_t area_ns = 0;
    for (const auto& s : slots_) {
      for (;;) {
        auto seq1 = s.seq.load(std::memory_order_acquire);
        if (seq1 & 1) continue;
        auto in_flight = s.in_flight.load(std::memory_order_relaxed);
        auto area = s.area.load(std::memory_order_relaxed);
        auto last = s.last_ns.load(std::memory_order_relaxed);
        auto arrivals = s.arrivals.load(std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (s.seq.load(std::memory_order_relaxed) != seq1) continue;
        r.in_flight += in_flight;
        area_ns += area + (in_flight != 0 && now > last ? in_flight * (now - last) : 0);
        r.arrivals += arrivals;
        if (last > r.last_change_ns) r.last_change_ns = last;
        break;
      }
    }
    r.area = static_cast<double>(area_ns) / 1e9;
    return r;
  }

  std::int64_t in_flight() const noexcept {
    std::int64_t n = 0;
    for (const auto& s : slots_) n += s.in_flight.load(std::memory_order_relaxed);
    return n;
  }

 private:
  struct alignas(64) slot {
    std::atomic<std::uint64_t> seq{0};
    std::atomic<std::int64_t> in_flight{0};
    std::atomic<std::int64_t> area{0};  // request-nanoseconds up to last_ns
    std::atomic<std::int64_t> last_ns{0};
    std::atomic<std::uint64_t> arrivals{0};
  };
  std::array<slot, max_shards> slots_{};
};

}  // namespace wakegate::scaler
