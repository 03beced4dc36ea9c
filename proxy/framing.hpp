// Strict RFC 9112 checks of a request's raw header bytes, before Beast parses them: the request
// line, every field line, and the body framing (Content-Length / Transfer-Encoding). Beast 1.81 is
// lenient where an edge must not be (obs-fold, TE with CL, TE on HTTP/1.0, TE other than chunked),
// so nothing reaches an instance unless this says so. A pure function: bytes in, verdict out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace wakegate::proxy {

enum class body_framing : std::uint8_t { none, length, chunked };

struct head_verdict {
  unsigned status = 0;        // 0 = may be forwarded; else 400, 431 or 505 (then close)
  std::string_view reason;    // short text for the response body and the log (static storage)
  body_framing framing = body_framing::none;
  std::uint64_t content_length = 0;  // with framing == length
  // A body on a method whose body some servers ignore (GET, HEAD, ...): forwarded, but neither
  // the client nor the upstream connection carries another request afterwards.
  bool close_after = false;
  std::size_t field_count = 0;
};

// Where the header block ends in `data`: the index just past the empty line's CRLF; 0 when it
// is not complete yet; npos when a line ends in a bare LF (refused: 400). `from` resumes a
// search over a growing buffer (pass the previous data size).
std::size_t find_head_end(std::string_view data, std::size_t from = 0) noexcept;

// The longest field name or value Beast's parser holds (its fields store lengths in 16 bits and
// throw std::length_error past this): a longer field line is refused with 431, whatever
// max_header_bytes allows (found in review: with max_header_bytes above 64 KiB, a larger Host
// ended the connection with no answer and no log line).
inline constexpr std::size_t max_field_bytes = 65533;

// `head` is the request line and field lines up to and including the empty line (CRLF CRLF).
head_verdict check_head(std::string_view head, std::size_t max_fields) noexcept;

// A Host value as RFC 9112 3.2 allows it: uri-host [ ":" port ] in the characters of a reg-name
// or an IP literal. Empty is allowed (a target without authority).
bool valid_host_value(std::string_view v) noexcept;

}  // namespace wakegate::proxy
