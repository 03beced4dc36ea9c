#include "common/time_zone.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

namespace wakegate {

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  // Years counted from March, so the leap day is the last day of the year.
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t days, std::int64_t& y, unsigned& m, unsigned& d) noexcept {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
}

namespace {

struct reader {
  const std::string& bytes;
  std::size_t pos = 0;
  bool ok = true;

  std::int64_t be(int n) {
    if (pos + static_cast<std::size_t>(n) > bytes.size()) {
      ok = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[pos++]);
    if (n == 4) return static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
    if (n == 1) return static_cast<std::int64_t>(v);
    return static_cast<std::int64_t>(v);
  }
  void skip(std::size_t n) {
    if (pos + n > bytes.size()) ok = false;
    pos = std::min(pos + n, bytes.size());
  }
};

// --- POSIX TZ strings: "CET-1CEST,M3.5.0,M10.5.0/3" ---

bool parse_name(const std::string& s, std::size_t& i) {
  if (i < s.size() && s[i] == '<') {
    auto end = s.find('>', i);
    if (end == std::string::npos) return false;
    i = end + 1;
    return true;
  }
  std::size_t start = i;
  while (i < s.size() && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'))) ++i;
  return i - start >= 3;
}

// [+-]hh[:mm[:ss]] in seconds.
bool parse_hms(const std::string& s, std::size_t& i, std::int32_t& out) {
  int sign = 1;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) sign = s[i++] == '-' ? -1 : 1;
  std::int32_t parts[3] = {0, 0, 0};
  for (int p = 0; p < 3; ++p) {
    if (p > 0) {
      if (i >= s.size() || s[i] != ':') break;
      ++i;
    }
    std::size_t start = i;
    std::int32_t v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 3) v = v * 10 + (s[i++] - '0');
    if (i == start) return false;
    parts[p] = v;
  }
  out = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
  return true;
}

bool parse_int(const std::string& s, std::size_t& i, int& out) {
  std::size_t start = i;
  out = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 3) out = out * 10 + (s[i++] - '0');
  return i > start;
}

// ",Mm.w.d[/time]"
bool parse_date(const std::string& s, std::size_t& i, int& m, int& w, int& d, std::int32_t& t) {
  if (i >= s.size() || s[i] != ',') return false;
  ++i;
  if (i >= s.size() || s[i] != 'M') return false;  // Jn and n forms: not supported (tzdata uses M)
  ++i;
  if (!parse_int(s, i, m) || i >= s.size() || s[i++] != '.') return false;
  if (!parse_int(s, i, w) || i >= s.size() || s[i++] != '.') return false;
  if (!parse_int(s, i, d)) return false;
  if (m < 1 || m > 12 || w < 1 || w > 5 || d < 0 || d > 6) return false;
  t = 7200;
  if (i < s.size() && s[i] == '/') {
    ++i;
    if (!parse_hms(s, i, t)) return false;
  }
  return true;
}

std::optional<time_zone::rule> parse_posix(const std::string& s) {
  time_zone::rule r;
  std::size_t i = 0;
  std::int32_t west = 0;
  if (!parse_name(s, i) || !parse_hms(s, i, west)) return std::nullopt;
  r.std_offset = -west;
  if (i == s.size()) return r;
  if (!parse_name(s, i)) return std::nullopt;
  r.has_dst = true;
  r.dst_offset = r.std_offset + 3600;
  if (i < s.size() && s[i] != ',') {
    if (!parse_hms(s, i, west)) return std::nullopt;
    r.dst_offset = -west;
  }
  if (!parse_date(s, i, r.start_month, r.start_week, r.start_day, r.start_time)) return std::nullopt;
  if (!parse_date(s, i, r.end_month, r.end_week, r.end_day, r.end_time)) return std::nullopt;
  if (i != s.size()) return std::nullopt;
  return r;
}

// Local midnight (as days since the epoch) of weekday `d` in week `w` of month `m` of year `y`.
std::int64_t rule_day(std::int64_t y, int m, int w, int d) {
  const std::int64_t first = days_from_civil(y, static_cast<unsigned>(m), 1);
  const int first_wd = static_cast<int>(((first % 7) + 7 + 4) % 7);  // 1970-01-01 was a Thursday (4)
  std::int64_t day = first + (d - first_wd + 7) % 7 + 7 * (w - 1);
  const std::int64_t next_month = m == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, static_cast<unsigned>(m + 1), 1);
  while (day >= next_month) day -= 7;  // week 5 = last
  return day;
}

std::int32_t rule_offset(const time_zone::rule& r, std::int64_t t) {
  if (!r.has_dst) return r.std_offset;
  std::int64_t y;
  unsigned m, d;
  civil_from_days((t + r.std_offset) / 86400 - ((t + r.std_offset) % 86400 < 0 ? 1 : 0), y, m, d);
  const std::int64_t start =
      rule_day(y, r.start_month, r.start_week, r.start_day) * 86400 + r.start_time - r.std_offset;
  const std::int64_t end = rule_day(y, r.end_month, r.end_week, r.end_day) * 86400 + r.end_time - r.dst_offset;
  const bool dst = start < end ? (t >= start && t < end) : (t < end || t >= start);
  return dst ? r.dst_offset : r.std_offset;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || name.front() == '/' || name.find("..") != std::string::npos) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' || c == '_' ||
           c == '-' || c == '+';
  });
}

}  // namespace

std::optional<time_zone> time_zone::load(const std::string& name, std::string& error, const std::string& dir) {
  if (!valid_name(name)) {
    error = "invalid time zone name '" + name + "'";
    return std::nullopt;
  }
  std::ifstream in(dir + "/" + name, std::ios::binary);
  if (!in) {
    error = "unknown time zone '" + name + "' (no file " + dir + "/" + name + "; is tzdata installed?)";
    return std::nullopt;
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse(name, bytes, error);
}

std::optional<time_zone> time_zone::parse(const std::string& name, const std::string& bytes, std::string& error) {
  reader r{bytes};
  auto header = [&](int& version, std::int64_t counts[6]) {
    if (bytes.compare(r.pos, 4, "TZif") != 0) return false;
    r.skip(4);
    const char v = r.pos < bytes.size() ? bytes[r.pos] : 0;
    version = v == 0 ? 1 : v - '0';
    r.skip(16);
    for (int i = 0; i < 6; ++i) counts[i] = r.be(4);
    return r.ok && std::all_of(counts, counts + 6, [](std::int64_t c) { return c >= 0 && c < 100000; });
  };
  // counts: isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
  int version = 0;
  std::int64_t c[6];
  if (!header(version, c)) {
    error = "time zone '" + name + "' is not a TZif file";
    return std::nullopt;
  }
  int time_size = 4;
  if (version >= 2) {
    // Skip the 32-bit block; the 64-bit one follows with its own header.
    r.skip(static_cast<std::size_t>(c[3] * 5 + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0]));
    if (!header(version, c)) {
      error = "time zone '" + name + "' has a broken TZif v2 header";
      return std::nullopt;
    }
    time_size = 8;
  }
  time_zone z;
  z.name_ = name;
  std::vector<std::int64_t> times(static_cast<std::size_t>(c[3]));
  for (auto& t : times) t = r.be(time_size);
  std::vector<std::uint8_t> idx(static_cast<std::size_t>(c[3]));
  for (auto& i : idx) i = static_cast<std::uint8_t>(r.be(1));
  std::vector<std::int32_t> utoff(static_cast<std::size_t>(c[4]));
  for (auto& u : utoff) {
    u = static_cast<std::int32_t>(r.be(4));
    r.skip(2);
  }
  r.skip(static_cast<std::size_t>(c[5] + c[2] * (time_size + 4) + c[1] + c[0]));
  if (!r.ok || utoff.empty()) {
    error = "time zone '" + name + "' is truncated";
    return std::nullopt;
  }
  for (std::size_t i = 0; i < times.size(); ++i) {
    if (idx[i] >= utoff.size()) {
      error = "time zone '" + name + "' has a bad transition";
      return std::nullopt;
    }
    z.times_.push_back(times[i]);
    z.offsets_.push_back(utoff[idx[i]]);
  }
  z.initial_offset_ = utoff[0];
  if (version >= 2 && r.pos < bytes.size() && bytes[r.pos] == '\n') {
    auto end = bytes.find('\n', r.pos + 1);
    if (end != std::string::npos) {
      z.footer_ = parse_posix(bytes.substr(r.pos + 1, end - r.pos - 1));
      // An empty or unsupported footer: the last transition's offset stays in effect.
    }
  }
  return z;
}

std::int32_t time_zone::offset_at(std::int64_t t) const noexcept {
  if (times_.empty() || t >= times_.back()) {
    if (footer_) return rule_offset(*footer_, t);
    return times_.empty() ? initial_offset_ : offsets_.back();
  }
  auto it = std::upper_bound(times_.begin(), times_.end(), t);
  if (it == times_.begin()) return initial_offset_;
  return offsets_[static_cast<std::size_t>(it - times_.begin() - 1)];
}

}  // namespace wakegate
