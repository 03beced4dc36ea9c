// time_zone: TZif files from tzdata, checked against known instants and against glibc's own reading
// of the same files (the test process may set TZ; wakegate itself never does).
#include "common/time_zone.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>
#include <string>

using wakegate::time_zone;

namespace {
time_zone must_load(const std::string& name) {
  std::string why;
  auto z = time_zone::load(name, why);
  INFO(why);
  REQUIRE(z.has_value());
  return *z;
}

long glibc_offset(const std::string& name, std::int64_t t) {
  setenv("TZ", (":" + name).c_str(), 1);
  tzset();
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  return tm.tm_gmtoff;
}
}  // namespace

TEST_CASE("time_zone: known offsets and transitions", "[time_zone]") {
  auto berlin = must_load("Europe/Berlin");
  CHECK(berlin.offset_at(1705320000) == 3600);   // 2024-01-15 12:00 UTC, CET
  CHECK(berlin.offset_at(1711846799) == 3600);   // 2024-03-31 00:59:59 UTC
  CHECK(berlin.offset_at(1711846800) == 7200);   // 01:00 UTC: CEST begins
  CHECK(berlin.offset_at(1729990799) == 7200);
  CHECK(berlin.offset_at(1729990800) == 3600);   // 2024-10-27 01:00 UTC: CET again
  CHECK(berlin.offset_at(2374102799) == 3600);   // 2045-03-26, after the listed transitions: the footer rule
  CHECK(berlin.offset_at(2374102800) == 7200);
  CHECK(berlin.offset_at(2392851599) == 7200);
  CHECK(berlin.offset_at(2392851600) == 3600);
  CHECK(must_load("UTC").offset_at(1705320000) == 0);
  CHECK(must_load("Asia/Kolkata").offset_at(1705320000) == 19800);
}

TEST_CASE("time_zone: agrees with glibc every 7 hours from 1970 to 2060", "[time_zone]") {
  const char* saved = std::getenv("TZ");
  std::string saved_value = saved ? saved : "";
  for (const std::string name : {"Europe/Berlin", "America/New_York", "Australia/Sydney", "America/Sao_Paulo",
                                 "Asia/Tokyo", "Pacific/Chatham", "America/St_Johns", "Africa/Casablanca"}) {
    auto z = must_load(name);
    int mismatches = 0;
    for (std::int64_t t = 0; t < 2840140800; t += 7 * 3600) {
      const long expected = glibc_offset(name, t);
      if (z.offset_at(t) != expected && ++mismatches <= 3) {
        INFO(name << " at " << t);
        CHECK(z.offset_at(t) == expected);
      }
    }
    CAPTURE(name);
    CHECK(mismatches == 0);
  }
  if (saved) setenv("TZ", saved_value.c_str(), 1);
  else unsetenv("TZ");
  tzset();
}

TEST_CASE("time_zone: a slim file (no transitions) uses its footer rule", "[time_zone]") {
  // TZif v2: empty v1 block, a v2 block with one type and no transitions, footer for Sydney.
  auto be32 = [](std::string& s, std::uint32_t v) {
    for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  auto header = [&](std::string& s, std::uint32_t typecnt, std::uint32_t charcnt) {
    s += "TZif2";
    s += std::string(15, '\0');
    for (std::uint32_t c : {0u, 0u, 0u, 0u, typecnt, charcnt}) be32(s, c);
  };
  std::string f;
  header(f, 0, 0);
  header(f, 1, 5);
  be32(f, 36000);
  f += std::string("\0\0", 2);
  f += std::string("AEST\0", 5);
  f += "\nAEST-10AEDT,M10.1.0,M4.1.0/3\n";
  std::string why;
  auto z = time_zone::parse("test/Sydney", f, why);
  INFO(why);
  REQUIRE(z);
  auto real = must_load("Australia/Sydney");
  for (std::int64_t t = 2208988800; t < 2208988800 + 3 * 365 * 86400; t += 3 * 3600) {  // 2040..2043
    CAPTURE(t);
    REQUIRE(z->offset_at(t) == real.offset_at(t));
  }
}

TEST_CASE("time_zone: bad names and files are refused with a reason", "[time_zone]") {
  std::string why;
  CHECK_FALSE(time_zone::load("Mars/Olympus", why));
  CHECK(why.find("unknown time zone 'Mars/Olympus'") == 0);
  CHECK_FALSE(time_zone::load("../etc/passwd", why));
  CHECK(why == "invalid time zone name '../etc/passwd'");
  CHECK_FALSE(time_zone::load("/etc/passwd", why));
  CHECK_FALSE(time_zone::parse("x", "not a tzif file", why));
  CHECK(why == "time zone 'x' is not a TZif file");
  CHECK_FALSE(time_zone::parse("x", std::string("TZif2") + std::string(15, '\0') + "abc", why));
}
