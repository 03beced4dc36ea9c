// Named time zones read from the system's TZif files (/usr/share/zoneinfo, Debian package tzdata).
// GCC 12's libstdc++ has no std::chrono tzdb, and setenv("TZ") + localtime_r would race with other
// threads; a loaded zone is an immutable value that any thread may query.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wakegate {

class time_zone {
 public:
  // Loads `name` (e.g. "Europe/Berlin", "UTC") from `dir`; nullopt with `error` set when the name is
  // invalid, the file is missing or not a valid TZif file.
  static std::optional<time_zone> load(const std::string& name, std::string& error,
                                       const std::string& dir = "/usr/share/zoneinfo");
  // Parses TZif bytes (exposed for tests).
  static std::optional<time_zone> parse(const std::string& name, const std::string& bytes, std::string& error);

  const std::string& name() const noexcept { return name_; }
  // Seconds east of UTC in effect at `unix_seconds`.
  std::int32_t offset_at(std::int64_t unix_seconds) const noexcept;
  std::int64_t to_local(std::int64_t unix_seconds) const noexcept { return unix_seconds + offset_at(unix_seconds); }

  // A POSIX TZ rule (the TZif footer), used after the last listed transition.
  struct rule {
    std::int32_t std_offset = 0;  // seconds east of UTC
    std::int32_t dst_offset = 0;
    bool has_dst = false;
    // Mm.w.d: month 1-12, week 1-5 (5 = last), weekday 0-6 (0 = Sunday), seconds after local midnight.
    int start_month = 0, start_week = 0, start_day = 0;
    std::int32_t start_time = 7200;
    int end_month = 0, end_week = 0, end_day = 0;
    std::int32_t end_time = 7200;
  };

 private:
  std::string name_;
  std::vector<std::int64_t> times_;     // transition instants, ascending
  std::vector<std::int32_t> offsets_;   // offset in effect from times_[i]
  std::int32_t initial_offset_ = 0;     // before the first transition
  std::optional<rule> footer_;
};

// Days since 1970-01-01 of a proleptic Gregorian date, and back.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept;
void civil_from_days(std::int64_t days, std::int64_t& y, unsigned& m, unsigned& d) noexcept;

}  // namespace wakegate
