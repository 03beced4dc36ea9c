#include "scaler/window.hpp"

#include <algorithm>
#include <cmath>

namespace wakegate::scaler {

namespace {
double to_seconds(clock_time t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }
}  // namespace

void load_window::reserve(std::chrono::milliseconds longest) {
  const auto need = static_cast<std::size_t>(std::ceil(static_cast<double>(longest.count()) / 1000.0)) + 2;
  if (need <= ring_.size()) return;
  std::vector<bucket> next(need);
  for (const auto& b : ring_)
    if (b.second >= 0) next[static_cast<std::size_t>(b.second) % need] = b;
  ring_ = std::move(next);
}

void load_window::reset() noexcept {
  started_ = false;
  for (auto& b : ring_) b = bucket{};
}

load_window::bucket& load_window::slot(std::int64_t second) {
  auto& b = ring_[static_cast<std::size_t>(second) % ring_.size()];
  if (b.second != second) b = bucket{second, 0, 0};
  return b;
}

// Spreads what happened between two readings evenly over the seconds they cover.
void load_window::spread(double from_s, double to_s, double area, double arrivals) {
  const double span = to_s - from_s;
  if (span <= 0) {
    auto& b = slot(static_cast<std::int64_t>(std::floor(to_s)));
    b.area += area;
    b.arrivals += arrivals;
    return;
  }
  // Spans longer than the ring only touch its last seconds.
  const double start = std::max(from_s, to_s - static_cast<double>(ring_.size()));
  for (double s = std::floor(start); s < to_s; s += 1) {
    const double overlap = std::min(s + 1, to_s) - std::max(s, start);
    if (overlap <= 0) continue;
    auto& b = slot(static_cast<std::int64_t>(s));
    b.area += area * overlap / span;
    b.arrivals += arrivals * overlap / span;
  }
}

void load_window::record(clock_time now, double area, std::uint64_t arrivals) {
  if (!started_) {
    started_ = true;
    woke_ = last_ = now;
    last_area_ = area;
    last_arrivals_ = arrivals;
    for (auto& b : ring_) b = bucket{};
    return;
  }
  if (now < last_) now = last_;
  spread(to_seconds(last_), to_seconds(now), area - last_area_,
         static_cast<double>(arrivals - last_arrivals_));
  last_ = now;
  last_area_ = area;
  last_arrivals_ = arrivals;
}

load_window::totals load_window::sum(clock_time now, std::chrono::milliseconds window) const noexcept {
  totals t;
  if (!started_) return t;
  const double end = to_seconds(std::min(now, last_));
  const double start = std::max(end - std::chrono::duration<double>(window).count(), to_seconds(woke_));
  t.span = end - start;
  if (t.span <= 0) return t;
  const double recorded_to = to_seconds(last_);
  for (const auto& b : ring_) {
    if (b.second < 0) continue;
    const double lo = static_cast<double>(b.second);
    // The part of this second that readings have covered so far.
    const double b_lo = std::max(lo, to_seconds(woke_));
    const double b_hi = std::min(lo + 1, recorded_to);
    if (b_hi <= b_lo) continue;
    const double overlap = std::min(b_hi, end) - std::max(b_lo, start);
    if (overlap <= 0) continue;
    const double f = overlap / (b_hi - b_lo);
    t.area += b.area * f;
    t.arrivals += b.arrivals * f;
  }
  return t;
}

double load_window::average_concurrency(clock_time now, std::chrono::milliseconds window) const noexcept {
  auto t = sum(now, window);
  return t.span > 0.001 ? t.area / t.span : 0;
}

double load_window::request_rate(clock_time now, std::chrono::milliseconds window) const noexcept {
  auto t = sum(now, window);
  // Counted over a second at least (or the window, if shorter): right after a wake, a few requests
  // a few milliseconds apart are not hundreds per second (found by black-box testing: three of
  // them made the cold-burst sizing start max_instances).
  const double base = std::max(t.span, std::min(1.0, std::chrono::duration<double>(window).count()));
  return t.span > 0.001 ? t.arrivals / base : 0;
}

}  // namespace wakegate::scaler
