// Fast path for relaying an instance's response head: pure functions over the raw head bytes,
// with no field container and no allocation. Parsing a head with Beast (a red-black tree and an
// allocation per field), stripping hop-by-hop fields and serialising again costs a noticeable
// share of the proxy's CPU per request, for what is nearly always a plain head: a final status,
// a Content-Length, ordinary fields. scan_plain_response recognises exactly that case;
// everything else (1xx, 204, 304, Transfer-Encoding or no Content-Length, obs-fold, odd syntax,
// Proxy-Connection, too many fields, ...) returns false and goes through the Beast path
// (session.cpp relay_response) as before. false is not an error.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace wakegate::proxy {

struct plain_response {
  unsigned status = 0;   // 200..599, never 204 or 304
  unsigned version = 0;  // 10 or 11
  std::string_view reason;  // as sent; may be empty
  std::uint64_t content_length = 0;
  // The instance's own: HTTP/1.1 unless a Connection token "close"; HTTP/1.0 only with a
  // "keep-alive" token (and no "close").
  bool keep_alive = false;
  // "X-Accel-Buffering: no" (nginx's switch; the value case-insensitive; if repeated, the last
  // one decides, as in nginx): the instance wants the response passed on as it comes, so the
  // proxy does not hold a small one back to send it whole.
  bool no_buffering = false;
  bool has_date = false;  // a Date field (else the proxy adds one: RFC 9110 6.6.1)
  std::size_t field_count = 0;
  // Field names listed in Connection (other than close, keep-alive and the framing fields
  // Host, Content-Length, Transfer-Encoding): hop-by-hop, dropped by append_plain_response.
  // Kept as offsets into the head, not views, so that this struct (a local of the proxy's
  // response coroutine, whose frame Asio recycles only below ~1 KiB) stays small.
  struct name_ref {
    std::uint16_t at = 0, size = 0;
  };
  std::array<name_ref, 16> connection_names{};
  std::size_t connection_name_count = 0;
};

// It is a local of the proxy's response coroutine, whose frame Asio recycles only below ~1 KiB:
// keep it small (a new flag fits in the padding after keep_alive).
static_assert(sizeof(plain_response) <= 120, "plain_response grew: check relay_response's frame size");

// `head`: a complete response head, status line through the empty line (as find_head_end
// delimits it), at most 65535 bytes. True only when the fast path may relay it; `out` is then filled in (views into
// `head`). Never throws, never allocates.
bool scan_plain_response(std::string_view head, plain_response& out) noexcept;

// Appends the head the client gets, meaning what the Beast path's head means:
// "HTTP/1.1 <status> <reason>" (the standard reason when the instance sent none), the
// instance's fields in its order (Beast's container moves a repeated name up next to its first
// occurrence; the order within one name is the same) minus hop-by-hop ones (and minus
// Strict-Transport-Security when `hsts` is set), then "Date: <date>" when `date` is not empty
// (the caller passes one when !r.has_date), then "Strict-Transport-Security: <hsts>" when
// set, then "Connection: close" when !keep_alive or "Connection: keep-alive" for a keep-alive
// HTTP/1.0 client, then the empty line. `head` and `r` must come from a successful scan_plain_response.
void append_plain_response(std::string_view head, const plain_response& r, bool keep_alive, unsigned client_version,
                           std::string_view hsts, std::string_view date, std::string& out);

}  // namespace wakegate::proxy
