#include "scaler/schedule.hpp"

#include <algorithm>

namespace wakegate::scaler {

int scheduled_min(const config::schedule_config& schedule, const time_zone& zone, std::int64_t unix_seconds) noexcept {
  if (schedule.ranges.empty()) return 0;
  const std::int64_t local = zone.to_local(unix_seconds);
  std::int64_t days = local / 86400;
  std::int64_t secs = local % 86400;
  if (secs < 0) {
    secs += 86400;
    --days;
  }
  const auto weekday = static_cast<unsigned>(((days + 3) % 7 + 7) % 7);  // 1970-01-01 was a Thursday; 0 = Monday
  const int minute = static_cast<int>(secs / 60);
  int best = 0;
  for (const auto& r : schedule.ranges)
    if ((r.days >> weekday) & 1u && minute >= r.from_minute && minute < r.to_minute)
      best = std::max(best, r.min_instances);
  return best;
}

}  // namespace wakegate::scaler
