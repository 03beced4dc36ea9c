#include "proxy/http_date.hpp"

#include <time.h>

namespace wakegate::proxy {

namespace {

void two_digits(char* at, int v) noexcept {
  at[0] = static_cast<char>('0' + v / 10);
  at[1] = static_cast<char>('0' + v % 10);
}

}  // namespace

void format_http_date(std::time_t t, char (&out)[http_date_size]) noexcept {
  static constexpr char days[] = "SunMonTueWedThuFriSat";
  static constexpr char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  std::tm tm{};
  gmtime_r(&t, &tm);
  const int year = tm.tm_year + 1900;  // four digits until 9999, as IMF-fixdate has it
  char* p = out;
  for (int i = 0; i < 3; ++i) *p++ = days[tm.tm_wday * 3 + i];
  *p++ = ',';
  *p++ = ' ';
  two_digits(p, tm.tm_mday);
  p += 2;
  *p++ = ' ';
  for (int i = 0; i < 3; ++i) *p++ = months[tm.tm_mon * 3 + i];
  *p++ = ' ';
  two_digits(p, year / 100 % 100);
  two_digits(p + 2, year % 100);
  p += 4;
  *p++ = ' ';
  two_digits(p, tm.tm_hour);
  p[2] = ':';
  two_digits(p + 3, tm.tm_min);
  p[5] = ':';
  two_digits(p + 6, tm.tm_sec);
  p += 8;
  *p++ = ' ';
  *p++ = 'G';
  *p++ = 'M';
  *p = 'T';
}

std::string_view http_date_now() noexcept {
  thread_local std::time_t second = -1;
  thread_local char text[http_date_size];
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);  // a second's resolution is all a Date has
  if (ts.tv_sec != second) {
    second = ts.tv_sec;
    format_http_date(second, text);
  }
  return {text, http_date_size};
}

}  // namespace wakegate::proxy
