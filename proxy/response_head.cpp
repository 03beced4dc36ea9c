#include "proxy/response_head.hpp"

// boost/core string_view (via status.hpp) uses std::ostream without including it.
#include <ostream>

#include <boost/beast/http/status.hpp>

#include "proxy/text_scan.hpp"

namespace wakegate::proxy {

namespace {

constexpr std::size_t max_fields = 100;
constexpr std::uint64_t max_content_length = std::uint64_t{1} << 62;

// Index of the first byte from `i` on that is not `table`'s; the head's final CRLF stops it.
template <const std::array<bool, 256>& table>
std::size_t skip(std::string_view head, std::size_t i) noexcept {
  while (table[static_cast<unsigned char>(head[i])]) ++i;
  return i;
}

// Past the text bytes from `i` on (a reason phrase or field value), 16 bytes at a time.
std::size_t skip_text(std::string_view head, std::size_t i) noexcept {
  return i + first_non_text(head.data() + i, head.size() - i);
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// One field line split at its colon; the value without surrounding whitespace, as Beast has it.
struct field_line {
  std::string_view name;
  std::string_view raw_value;  // everything after the colon
  std::string_view value;
};

field_line split(std::string_view line, std::size_t colon) noexcept {
  field_line f{line.substr(0, colon), line.substr(colon + 1), {}};
  f.value = trim_ows(f.raw_value);
  return f;
}

// The tokens of one Connection field. False when the list is malformed (Beast refuses it) or
// names more fields than plain_response holds.
bool add_connection_tokens(std::string_view head, std::string_view v, plain_response& r, bool& close,
                           bool& keep_alive) noexcept {
  for (;;) {
    auto comma = v.find(',');
    auto token = trim_ows(v.substr(0, comma));
    if (!token.empty()) {
      if (!is_token(token)) return false;
      if (iequals(token, "close")) {
        close = true;
      } else if (iequals(token, "keep-alive")) {
        keep_alive = true;
      } else if (!iequals(token, "host") && !iequals(token, "content-length") &&
                 !iequals(token, "transfer-encoding")) {
        if (r.connection_name_count == r.connection_names.size()) return false;
        r.connection_names[r.connection_name_count++] = {static_cast<std::uint16_t>(token.data() - head.data()),
                                                         static_cast<std::uint16_t>(token.size())};
      }
    }
    if (comma == std::string_view::npos) return true;
    v.remove_prefix(comma + 1);
  }
}

bool parse_content_length(std::string_view v, std::uint64_t& n) noexcept {
  if (v.empty() || v.size() > 19) return false;  // 19 digits cannot overflow 64 bits
  n = 0;
  for (char c : v) {
    if (!is_digit(c)) return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n <= max_content_length;
}

bool is_hop_by_hop(std::string_view head, std::string_view name, const plain_response& r) noexcept {
  switch (name.size()) {
    case 2:
      if (iequals(name, "te")) return true;
      break;
    case 7:
      if (iequals(name, "trailer") || iequals(name, "upgrade")) return true;
      break;
    case 10:
      if (iequals(name, "connection") || iequals(name, "keep-alive")) return true;
      break;
    case 16:
      if (iequals(name, "proxy-connection")) return true;
      break;
    default:
      break;
  }
  for (std::size_t i = 0; i < r.connection_name_count; ++i)
    if (iequals(name, head.substr(r.connection_names[i].at, r.connection_names[i].size))) return true;
  return false;
}

}  // namespace

bool scan_plain_response(std::string_view head, plain_response& out) noexcept {
  out = plain_response{};
  // The head ends in CRLF CRLF, so the table-driven loops below stop before its end.
  if (head.size() < 17 || head.size() > 65535 || !head.ends_with("\r\n\r\n")) return false;
  // Status line: "HTTP/1.x ddd reason", single spaces.
  if (head.substr(0, 7) != "HTTP/1." || (head[7] != '0' && head[7] != '1') || head[8] != ' ' || !is_digit(head[9]) ||
      !is_digit(head[10]) || !is_digit(head[11]) || head[12] != ' ')
    return false;
  out.version = head[7] == '0' ? 10 : 11;
  out.status = static_cast<unsigned>((head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0'));
  if (out.status < 200 || out.status > 599 || out.status == 204 || out.status == 304) return false;
  std::size_t eol = skip_text(head, 13);
  if (head[eol] != '\r' || head[eol + 1] != '\n') return false;
  out.reason = head.substr(13, eol - 13);

  bool close = false, keep_alive = false;
  int cl_count = 0;
  std::size_t pos = eol + 2;
  while (head[pos] != '\r') {
    // A name is a token right up to the colon: no obs-fold, no whitespace before the colon.
    auto colon = skip<tchar>(head, pos);
    if (colon == pos || head[colon] != ':') return false;
    eol = skip_text(head, colon + 1);
    if (head[eol] != '\r' || head[eol + 1] != '\n') return false;  // a bare CR or LF, or a control
    auto f = split(head.substr(pos, eol - pos), colon - pos);
    pos = eol + 2;
    if (++out.field_count > max_fields) return false;

    switch (f.name.size()) {
      case 4:
        if (iequals(f.name, "date")) out.has_date = true;
        break;
      case 10:
        if (iequals(f.name, "connection") && !add_connection_tokens(head, f.value, out, close, keep_alive)) return false;
        break;
      case 14:
        if (iequals(f.name, "content-length") && (++cl_count > 1 || !parse_content_length(f.value, out.content_length)))
          return false;
        break;
      // Beast reads Proxy-Connection like Connection; rare enough to leave to it.
      case 16:
        if (iequals(f.name, "proxy-connection")) return false;
        break;
      case 17:
        if (iequals(f.name, "transfer-encoding")) return false;
        if (iequals(f.name, "x-accel-buffering")) out.no_buffering = iequals(f.value, "no");  // the last one decides
        break;
      default:
        break;
    }
  }
  // The empty line must be the end of the head.
  if (pos + 2 != head.size() || cl_count != 1) return false;
  // A Date the instance names in Connection is dropped as hop-by-hop: the proxy adds its own.
  for (std::size_t i = 0; i < out.connection_name_count && out.has_date; ++i)
    if (iequals(head.substr(out.connection_names[i].at, out.connection_names[i].size), "date")) out.has_date = false;
  out.keep_alive = !close && (out.version == 11 || keep_alive);
  return true;
}

void append_plain_response(std::string_view head, const plain_response& r, bool keep_alive, unsigned client_version,
                           std::string_view hsts, std::string_view date, std::string& out) {
  out.reserve(out.size() + head.size() + hsts.size() + date.size() + 96);
  out.append("HTTP/1.1 ").append(head.substr(9, 3)).push_back(' ');
  if (r.reason.empty()) {
    auto standard = boost::beast::http::obsolete_reason(boost::beast::http::int_to_status(r.status));
    out.append(standard.data(), standard.size());
  } else {
    out.append(r.reason);
  }
  out.append("\r\n");

  // Runs of kept lines already in "Name: value" form are copied in one piece; a line that is
  // dropped or needs its whitespace normalised ends the run.
  // The head was scanned: every CR starts a CRLF and every name runs up to a colon.
  std::size_t pos = r.reason.data() + r.reason.size() - head.data() + 2;
  std::size_t run = pos;
  while (head[pos] != '\r') {
    auto colon = head.find(':', pos);
    auto eol = head.find('\r', colon);
    auto f = split(head.substr(pos, eol - pos), colon - pos);
    bool drop = is_hop_by_hop(head, f.name, r) || (!hsts.empty() && iequals(f.name, "strict-transport-security"));
    bool as_is = !drop && f.raw_value.size() == f.value.size() + 1 && f.raw_value.front() == ' ';
    if (!as_is) {
      out.append(head.substr(run, pos - run));
      if (!drop) out.append(f.name).append(": ").append(f.value).append("\r\n");
      run = eol + 2;
    }
    pos = eol + 2;
  }
  out.append(head.substr(run, pos - run));

  if (!date.empty()) out.append("Date: ").append(date).append("\r\n");
  if (!hsts.empty()) out.append("Strict-Transport-Security: ").append(hsts).append("\r\n");
  if (!keep_alive)
    out.append("Connection: close\r\n");
  else if (client_version == 10)
    out.append("Connection: keep-alive\r\n");
  out.append("\r\n");
}

}  // namespace wakegate::proxy
