// scheduled_min: weekly ranges in a named time zone.
#include "scaler/schedule.hpp"

#include <catch2/catch.hpp>

using wakegate::time_zone;
using wakegate::config::schedule_config;
using wakegate::config::schedule_range;
using wakegate::scaler::scheduled_min;

namespace {
time_zone zone(const std::string& name) {
  std::string why;
  auto z = time_zone::load(name, why);
  REQUIRE(z);
  return *z;
}
constexpr unsigned mon_fri = 0x1f;
}  // namespace

TEST_CASE("schedule: business hours in Berlin, summer and winter", "[schedule]") {
  schedule_config sc;
  sc.time_zone = "Europe/Berlin";
  sc.ranges.push_back(schedule_range{mon_fri, 9 * 60, 18 * 60, 3});
  sc.ranges.push_back(schedule_range{1u << 0, 12 * 60, 13 * 60, 5});  // Monday lunch
  auto berlin = zone("Europe/Berlin");
  // 2025-06-02 is a Monday; CEST = UTC+2.
  CHECK(scheduled_min(sc, berlin, 1748847599) == 0);  // 08:59:59 local
  CHECK(scheduled_min(sc, berlin, 1748847600) == 3);  // 09:00 local
  CHECK(scheduled_min(sc, berlin, 1748858400) == 5);  // 12:00 local: the larger range wins
  CHECK(scheduled_min(sc, berlin, 1748879999) == 3);  // 17:59:59
  CHECK(scheduled_min(sc, berlin, 1748880000) == 0);  // 18:00: the end is exclusive
  // 2025-01-06, a Monday in winter; CET = UTC+1.
  CHECK(scheduled_min(sc, berlin, 1736150399) == 0);  // 08:59:59 local
  CHECK(scheduled_min(sc, berlin, 1736150400) == 3);
  // 2025-06-07 is a Saturday.
  CHECK(scheduled_min(sc, berlin, 1749290400) == 0);
  // The same instant in UTC is 08:59:59 on Monday: outside.
  CHECK(scheduled_min(sc, zone("UTC"), 1748847599 + 3600 * 2 - 3600) == 0);
}

TEST_CASE("schedule: whole days, 24:00, no ranges", "[schedule]") {
  schedule_config sc;
  auto utc = zone("UTC");
  CHECK(scheduled_min(sc, utc, 1749290400) == 0);
  sc.ranges.push_back(schedule_range{0x60, 0, 24 * 60, 2});  // sat, sun all day
  CHECK(scheduled_min(sc, utc, 1749290400) == 2);              // Saturday 10:00
  CHECK(scheduled_min(sc, utc, 1749254400) == 2);              // Saturday 00:00
  CHECK(scheduled_min(sc, utc, 1749254399) == 0);              // Friday 23:59:59
  CHECK(scheduled_min(sc, utc, 1749427199) == 2);              // Sunday 23:59:59
  CHECK(scheduled_min(sc, utc, -86400 * 3) == 0);              // 1969-12-29, a Monday, before the epoch
}
