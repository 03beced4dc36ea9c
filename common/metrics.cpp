#include "common/metrics.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace wakegate::metrics {

std::uint64_t counter::value() const noexcept {
  std::uint64_t total = 0;
  for (const auto& s : slots_) total += s.v.load(std::memory_order_relaxed);
  return total;
}

std::int64_t sharded_gauge::value() const noexcept {
  std::int64_t total = 0;
  for (const auto& s : slots_) total += s.v.load(std::memory_order_relaxed);
  return total;
}

// One shard's counts, per bucket (not cumulative; the last one is +Inf), and sum of observations.
// The total count is the sum of the buckets, so a snapshot's +Inf bucket always equals its count.
struct alignas(64) histogram::shard_data {
  std::array<std::atomic<std::uint64_t>, max_bounds + 1> buckets{};
  std::atomic<double> sum{0.0};
};

histogram::histogram(std::span<const double> bounds) : bounds_(bounds.begin(), bounds.end()) {
  if (bounds_.size() > max_bounds) throw std::invalid_argument("histogram: too many bounds");
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i])) throw std::invalid_argument("histogram: bound not finite");
    if (i > 0 && !(bounds_[i - 1] < bounds_[i]))
      throw std::invalid_argument("histogram: bounds not strictly ascending");
  }
  shard_n_ = std::min(shard_count, max_shards);
  shards_ = std::make_unique<shard_data[]>(shard_n_);
}

histogram::~histogram() = default;

void histogram::observe(double v) noexcept {
  // First bound with v <= bound (le is inclusive); NaN and values above every bound go to +Inf.
  auto it = std::partition_point(bounds_.begin(), bounds_.end(), [v](double b) { return !(v <= b); });
  auto& s = shards_[this_shard];
  auto& bucket = s.buckets[static_cast<std::size_t>(it - bounds_.begin())];
  bucket.store(bucket.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  s.sum.store(s.sum.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
}

histogram_snapshot histogram::snapshot() const {
  histogram_snapshot h;
  h.bounds = bounds_;
  h.counts.assign(bounds_.size() + 1, 0);
  for (std::size_t s = 0; s < shard_n_; ++s) {
    const auto& shard = shards_[s];
    for (std::size_t i = 0; i < h.counts.size(); ++i)
      h.counts[i] += shard.buckets[i].load(std::memory_order_relaxed);
    h.sum += shard.sum.load(std::memory_order_relaxed);
  }
  std::uint64_t running = 0;
  for (auto& c : h.counts) {
    running += c;
    c = running;
  }
  h.count = running;
  return h;
}

std::span<const double> latency_buckets() {
  static constexpr std::array<double, 16> buckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                  0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
  return buckets;
}

namespace {

void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  std::array<char, 32> buf;
  std::to_chars_result r;
  if (v == std::trunc(v) && std::fabs(v) < 0x1p53) {
    r = std::to_chars(buf.data(), buf.data() + buf.size(), static_cast<std::int64_t>(v));
  } else {
    // Shortest round-trip digits in %g notation: 0.0005 rather than 5e-04 (as other clients write le).
    r = std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::general);
  }
  out.append(buf.data(), r.ptr);
}

void append_escaped(std::string& out, std::string_view text, bool quotes) {
  for (char c : text) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '"':
        if (quotes) out += '\\';
        out += '"';
        break;
      default: out += c;
    }
  }
}

void append_label(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += "=\"";
  append_escaped(out, value, true);
  out += '"';
}

void append_labels(std::string& out, std::span<const label> labels) {
  if (labels.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    append_label(out, labels[i].first, labels[i].second);
  }
  out += '}';
}

void append_count(std::string& out, std::uint64_t v) {
  std::array<char, 24> buf;
  auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

// The labels plus le="<bound>" (+Inf when bound is null), for histogram buckets.
void append_labels_le(std::string& out, std::span<const label> labels, const double* bound) {
  out += '{';
  for (const auto& [name, value] : labels) {
    append_label(out, name, value);
    out += ',';
  }
  out += "le=\"";
  if (bound) {
    append_number(out, *bound);
  } else {
    out += "+Inf";
  }
  out += "\"}";
}

}  // namespace

void text_writer::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  append_escaped(out_, help, false);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void text_writer::sample(std::string_view name, std::initializer_list<label> labels, double value) {
  sample(name, std::span<const label>(labels.begin(), labels.size()), value);
}

void text_writer::sample(std::string_view name, std::span<const label> labels, double value) {
  out_ += name;
  append_labels(out_, labels);
  out_ += ' ';
  append_number(out_, value);
  out_ += '\n';
}

void text_writer::histogram(std::string_view name, std::span<const label> labels, const histogram_snapshot& h) {
  auto bucket = [&](const double* bound, std::uint64_t cumulative) {
    out_ += name;
    out_ += "_bucket";
    append_labels_le(out_, labels, bound);
    out_ += ' ';
    append_count(out_, cumulative);
    out_ += '\n';
  };
  for (std::size_t i = 0; i < h.bounds.size(); ++i)
    bucket(&h.bounds[i], i < h.counts.size() ? h.counts[i] : h.count);
  bucket(nullptr, h.count);
  out_ += name;
  out_ += "_sum";
  append_labels(out_, labels);
  out_ += ' ';
  append_number(out_, h.sum);
  out_ += '\n';
  out_ += name;
  out_ += "_count";
  append_labels(out_, labels);
  out_ += ' ';
  append_count(out_, h.count);
  out_ += '\n';
}

}  // namespace wakegate::metrics
