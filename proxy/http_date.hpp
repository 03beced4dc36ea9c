// The value of a Date field (RFC 9110 5.6.7, IMF-fixdate) for the responses that go out without
// one: wakegate's own, and an instance's that sent none (RFC 9110 6.6.1).
#pragma once

#include <ctime>
#include <string_view>

namespace wakegate::proxy {

inline constexpr std::size_t http_date_size = 29;  // "Sun, 06 Nov 1994 08:49:37 GMT"

// `t` (seconds since the epoch) in UTC, as above, into out[0, 29). Never throws.
void format_http_date(std::time_t t, char (&out)[http_date_size]) noexcept;

// The current time's, formatted again only when the second changes (one cache per thread): a
// clock read per call, no allocation. Valid until the thread's next call.
std::string_view http_date_now() noexcept;

}  // namespace wakegate::proxy
