#include "proxy/framing.hpp"

#include <array>
#include <cstring>

#include "proxy/text_scan.hpp"

namespace wakegate::proxy {

namespace {

// Request targets: visible ASCII and obs-text; no controls, spaces or DEL.
bool is_target_byte(unsigned char c) noexcept { return c > 0x20 && c != 0x7f; }

// The letters of a name, lower-cased: "Transfer_Encoding" and "transfer---encoding" both give
// "transferencoding". A name that folds to a framing header without being one is refused, since
// some servers (CGI-style environments, lenient parsers) read it as the real thing.
bool resembles(std::string_view name, std::string_view letters) noexcept {
  std::size_t j = 0;
  for (char c : name) {
    c = ascii_lower(c);
    if (c < 'a' || c > 'z') continue;
    if (j == letters.size() || letters[j] != c) return false;
    ++j;
  }
  return j == letters.size();
}

head_verdict reject(unsigned status, std::string_view reason) noexcept {
  head_verdict v;
  v.status = status;
  v.reason = reason;
  return v;
}

// Transfer-Encoding codings seen so far, over every Transfer-Encoding line.
struct te_state {
  bool present = false;
  bool chunked_seen = false;
  bool last_chunked = false;
  std::string_view error;
};

void add_codings(te_state& te, std::string_view value) noexcept {
  te.present = true;
  if (value.empty()) {
    te.error = "empty Transfer-Encoding";
    return;
  }
  while (te.error.empty()) {
    auto comma = value.find(',');
    auto element = trim_ows(value.substr(0, comma));
    auto semi = element.find(';');
    auto coding = trim_ows(element.substr(0, semi));
    if (!is_token(coding)) {
      te.error = "invalid Transfer-Encoding";
      return;
    }
    if (te.chunked_seen) {
      te.error = iequals(coding, "chunked") ? "chunked applied twice" : "Transfer-Encoding after chunked";
      return;
    }
    // Parameters: readers disagree on whether "chunked;x" is chunked, and Beast reads no list
    // with parameters at all ("gzip;q=1, chunked" would not be chunked to it). None are in use.
    if (semi != std::string_view::npos) {
      te.error = "parameters on a transfer coding";
      return;
    }
    if (iequals(coding, "chunked")) te.chunked_seen = true;
    te.last_chunked = te.chunked_seen;
    if (comma == std::string_view::npos) return;
    value.remove_prefix(comma + 1);
  }
}

bool body_ignored_by_some(std::string_view method) noexcept {
  return method == "GET" || method == "HEAD" || method == "DELETE" || method == "OPTIONS" || method == "TRACE" ||
         method == "CONNECT";
}

// The characters of a reg-name (unreserved, pct-encoded, sub-delims), an IP literal's brackets,
// and the port's colon (RFC 3986 3.2.2). Anything else (a space, '@', '/') gets 400.
constexpr std::array<bool, 256> make_host_byte() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (char c : std::string_view("-._~%!$&'()*+,;=:[]")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr std::array<bool, 256> host_byte = make_host_byte();

}  // namespace

// host [":" port], in one pass: brackets only around an IPv6 literal that starts the value, and
// a port of at most 5 digits (found by black-box testing: "h:abc" was forwarded as it came).
bool valid_host_value(std::string_view v) noexcept {
  const bool literal = !v.empty() && v.front() == '[';
  std::size_t close = std::string_view::npos;  // the literal's ']'
  std::size_t colon = std::string_view::npos;  // the port's ':'
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (!host_byte[static_cast<unsigned char>(c)]) return false;
    if (c == '[') {
      if (i != 0) return false;
    } else if (c == ']') {
      if (!literal || close != std::string_view::npos) return false;
      close = i;
    } else if (c == ':') {
      if (literal ? close != std::string_view::npos : colon == std::string_view::npos) {
        if (colon != std::string_view::npos) return false;
        colon = i;
      } else if (!literal) {
        return false;  // a second ':' outside a literal
      }
    } else if (colon != std::string_view::npos && (c < '0' || c > '9')) {
      return false;  // the port is digits
    }
  }
  if (literal && (close == std::string_view::npos || close == 1 || (close + 1 != v.size() && close + 1 != colon)))
    return false;
  return colon == std::string_view::npos || v.size() - colon - 1 <= 5;
}

std::size_t find_head_end(std::string_view data, std::size_t from) noexcept {
  // Resume a few bytes back: the CRLF CRLF may straddle two reads.
  std::size_t i = from > 3 ? from - 3 : 0;
  const char* p = data.data();
  while (i < data.size()) {
    // Line by line: memchr finds each LF many bytes at a time.
    const void* lf = std::memchr(p + i, '\n', data.size() - i);
    if (lf == nullptr) return 0;
    i = static_cast<std::size_t>(static_cast<const char*>(lf) - p);
    if (i == 0 || p[i - 1] != '\r') return std::string_view::npos;
    if (i >= 3 && p[i - 2] == '\n' && p[i - 3] == '\r') return i + 1;
    ++i;
  }
  return 0;
}

head_verdict check_head(std::string_view head, std::size_t max_fields) noexcept {
  // Request line: method SP request-target SP HTTP-version CRLF, single spaces.
  auto eol = head.find("\r\n");
  if (eol == std::string_view::npos) return reject(400, "incomplete request line");
  std::string_view line = head.substr(0, eol);
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return reject(400, "malformed request line (HTTP/0.9 is not supported)");
  std::string_view method = line.substr(0, sp1);
  if (!is_token(method)) return reject(400, "invalid method");
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return reject(400, "malformed request line (HTTP/0.9 is not supported)");
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (target.empty()) return reject(400, "empty request target");
  for (unsigned char c : target) {
    if (!is_target_byte(c)) return reject(400, "invalid character in request target");
    // No request-target form has a fragment (RFC 9112 3.2): refused in every form alike (found
    // by black-box testing: an origin-form one was forwarded, an absolute-form one refused).
    if (c == '#') return reject(400, "fragment in request target");
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' ||
      version[5] > '9' || version[7] < '0' || version[7] > '9')
    return reject(400, "malformed HTTP version");
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) return reject(505, "HTTP version not supported");
  const bool http10 = version[7] == '0';

  head_verdict v;
  te_state te;
  int cl_count = 0;
  int host_count = 0;
  std::size_t pos = eol + 2;
  for (;;) {
    eol = head.find("\r\n", pos);
    if (eol == std::string_view::npos) return reject(400, "incomplete header");
    if (eol == pos) {  // the empty line
      pos += 2;
      break;
    }
    line = head.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.front() == ' ' || line.front() == '\t') return reject(400, "obsolete line folding in header");
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return reject(400, "header line without a colon");
    std::string_view name = line.substr(0, colon);
    if (name.empty()) return reject(400, "empty header name");
    if (name.back() == ' ' || name.back() == '\t') return reject(400, "whitespace between header name and colon");
    if (!is_token(name)) return reject(400, "invalid character in header name");
    if (name.size() > max_field_bytes || line.size() - colon - 1 > max_field_bytes)
      return reject(431, "header field too large");
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (auto bad = first_non_text(value.data(), value.size()); bad != value.size()) {
      // A bare CR or LF inside a value is how requests are split; NUL and the rest are refused too.
      char c = value[bad];
      return reject(400, c == '\r' || c == '\n' ? "bare CR or LF in header" : "control character in header value");
    }
    if (++v.field_count > max_fields) return reject(431, "too many header fields");

    if (iequals(name, "content-length")) {
      ++cl_count;
      if (value.empty() || value.size() > 19) return reject(400, "invalid Content-Length");
      std::uint64_t n = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return reject(400, "invalid Content-Length");
        n = n * 10 + static_cast<std::uint64_t>(c - '0');
      }
      v.content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      add_codings(te, value);
      if (!te.error.empty()) return reject(400, te.error);
    } else if (iequals(name, "host")) {
      ++host_count;
      if (!valid_host_value(value)) return reject(400, "invalid Host header");
    } else if (resembles(name, "contentlength") || resembles(name, "transferencoding")) {
      return reject(400, "header name resembles a framing header");
    }
  }
  if (pos != head.size()) return reject(400, "data after the header block");

  if (host_count > 1) return reject(400, "several Host headers");
  if (host_count == 0 && !http10) return reject(400, "missing Host header");
  if (cl_count > 1) return reject(400, "several Content-Length headers");
  if (te.present) {
    if (cl_count > 0) return reject(400, "both Transfer-Encoding and Content-Length");
    if (http10) return reject(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (!te.last_chunked) return reject(400, "Transfer-Encoding without a final chunked");
    v.framing = body_framing::chunked;
  } else if (cl_count == 1) {
    v.framing = body_framing::length;
  } else {
    v.content_length = 0;
  }
  bool has_body = v.framing == body_framing::chunked || (v.framing == body_framing::length && v.content_length > 0);
  v.close_after = has_body && body_ignored_by_some(method);
  return v;
}

}  // namespace wakegate::proxy
