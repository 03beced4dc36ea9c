// `schedule:` -- the min_instances a weekly schedule asks for at a given instant.
#pragma once

#include <cstdint>

#include "common/time_zone.hpp"
#include "config/config.hpp"

namespace wakegate::scaler {

// The largest min_instances of the ranges containing `unix_seconds` in `zone`'s local time, or 0.
int scheduled_min(const config::schedule_config& schedule, const time_zone& zone, std::int64_t unix_seconds) noexcept;

}  // namespace wakegate::scaler
