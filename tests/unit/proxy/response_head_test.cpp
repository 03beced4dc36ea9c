#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include "proxy/headers.hpp"
#include "proxy/response_head.hpp"
#include "proxy/wire.hpp"

namespace http = boost::beast::http;
using namespace wakegate::proxy;

namespace {

constexpr std::string_view hsts_value = "max-age=31536000";

std::optional<plain_response> scan(std::string_view head) {
  plain_response r;
  if (!scan_plain_response(head, r)) return std::nullopt;
  return r;
}

// Beast's parse of a complete response head; nullopt when Beast refuses it.
std::unique_ptr<http::response_parser<http::empty_body>> beast_parse(std::string_view head) {
  auto p = std::make_unique<http::response_parser<http::empty_body>>();
  p->header_limit(1 << 20);
  p->body_limit(boost::none);  // as session.cpp sets it
  boost::beast::error_code ec;
  auto n = p->put(boost::asio::buffer(head.data(), head.size()), ec);
  if (ec || !p->is_header_done() || n != head.size()) return nullptr;
  return p;
}

// The Beast path's steps, as session.cpp relay_response applies them to a plain response.
std::string beast_path(std::string_view head, bool keep, unsigned client_version, std::string_view hsts) {
  auto p = beast_parse(head);
  REQUIRE(p);
  auto& resp = p->get();
  strip_hop_by_hop(resp);
  if (!hsts.empty()) resp.set(http::field::strict_transport_security, hsts);
  resp.version(11);
  resp.keep_alive(keep);
  if (keep && client_version == 10) resp.set(http::field::connection, "keep-alive");
  std::string out;
  wire::append_response_head(resp, out);
  return out;
}

std::string fast_path(std::string_view head, const plain_response& r, bool keep, unsigned client_version,
                      std::string_view hsts, std::string_view date = {}) {
  std::string out;
  append_plain_response(head, r, keep, client_version, hsts, date, out);
  return out;
}

std::string lowered(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

using field_list = std::vector<std::pair<std::string, std::string>>;

// What a client reads from a head we send. Status, reason and keep-alive as Beast reads them;
// the fields straight from the bytes, since Beast's container reorders them (below). The order
// of ordinary fields matters, Connection and Strict-Transport-Security may sit anywhere.
struct client_view {
  unsigned status = 0;
  unsigned version = 0;
  std::string reason;
  bool keep_alive = false;
  field_list fields;
  field_list unordered;
  field_list all;  // every field, in the order sent
};

std::string text(const field_list& fields) {
  std::string out;
  for (const auto& [name, value] : fields) out += name + ": " + value + "\n";
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

client_view read_back(std::string_view head) {
  auto p = beast_parse(head);
  REQUIRE(p);
  client_view v;
  v.status = p->get().result_int();
  v.version = p->get().version();
  v.reason = std::string(p->get().reason());
  v.keep_alive = p->keep_alive();
  auto pos = head.find("\r\n") + 2;
  for (auto eol = head.find("\r\n", pos); eol != pos; pos = eol + 2, eol = head.find("\r\n", pos)) {
    auto line = head.substr(pos, eol - pos);
    auto colon = line.find(':');
    auto name = lowered(line.substr(0, colon));
    auto& list = name == "connection" || name == "strict-transport-security" ? v.unordered : v.fields;
    list.emplace_back(name, std::string(trim(line.substr(colon + 1))));
    v.all.push_back(list.back());
  }
  std::sort(v.unordered.begin(), v.unordered.end());
  return v;
}

// Beast's fields container keeps same-name fields together: a repeated name is inserted after
// the last field of that name, not at the end. So the Beast path moves e.g. a second Set-Cookie
// up next to the first, where the fast path keeps the instance's order. Both keep the order
// among fields of one name, the only order HTTP gives meaning to (RFC 9110 5.3).
field_list group_like_beast(const field_list& fields) {
  field_list out;
  for (const auto& f : fields) {
    auto last_same = std::find_if(out.rbegin(), out.rend(), [&](const auto& g) { return g.first == f.first; });
    out.insert(last_same == out.rend() ? out.end() : last_same.base(), f);
  }
  return out;
}

// A Connection token "close" anywhere in the head (Beast's parser ignores it on HTTP/1.0 when
// "keep-alive" is there too; the scanner lets close win).
bool has_close_token(const http::fields& f) {
  for (auto it = f.find(http::field::connection); it != f.end() && it->name() == http::field::connection; ++it)
    if (http::token_list{it->value()}.exists("close")) return true;
  return false;
}

// Scanner vs Beast on the same bytes, then fast path vs Beast path for every combination.
void check_against_beast(std::string_view head) {
  INFO("head: " << head);
  auto r = scan(head);
  REQUIRE(r);
  auto p = beast_parse(head);
  REQUIRE(p);  // Beast accepts whatever the scanner accepts
  CHECK(r->status == p->get().result_int());
  CHECK(r->version == p->get().version());
  // Beast's reason() is the standard phrase when none was sent.
  if (r->reason.empty())
    CHECK(std::string_view(p->get().reason()) == std::string_view(http::obsolete_reason(http::int_to_status(r->status))));
  else
    CHECK(r->reason == std::string_view(p->get().reason()));
  REQUIRE(p->content_length().has_value());
  CHECK(r->content_length == *p->content_length());
  if (r->version == 10 && has_close_token(p->get()))
    CHECK_FALSE(r->keep_alive);
  else
    CHECK(r->keep_alive == p->keep_alive());

  for (bool keep : {true, false})
    for (unsigned client_version : {10u, 11u})
      for (std::string_view hsts : {std::string_view{}, hsts_value}) {
        INFO("keep " << keep << ", client HTTP/1." << client_version % 10 << ", hsts '" << hsts << "'");
        auto fast = fast_path(head, *r, keep, client_version, hsts);
        auto reference = beast_path(head, keep, client_version, hsts);
        auto got = read_back(fast);
        auto want = read_back(reference);
        CHECK(got.keep_alive == keep);
        CHECK(got.version == 11);
        auto grouped = group_like_beast(got.fields);
        // Where no fields get regrouped, the very same bytes.
        if (group_like_beast(got.all) == got.all) CHECK(fast == reference);
        CHECK(got.status == want.status);
        CHECK(got.reason == want.reason);
        CHECK(got.keep_alive == want.keep_alive);
        CHECK(text(grouped) == text(want.fields));
        CHECK(text(got.unordered) == text(want.unordered));
      }
}

struct accept_case {
  const char* what;
  std::string_view head;
  unsigned status;
  unsigned version;
  std::uint64_t content_length;
  bool keep_alive;
};

const accept_case accepted[] = {
    {"typical nginx", "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n", 200, 11, 5,
     true},
    {"empty reason", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", 200, 11, 0, true},
    {"reason with tabs, spaces and obs-text", "HTTP/1.1 404 Not\tFound  caf\xc3\xa9 \r\nContent-Length: 1\r\n\r\n", 404, 11,
     1, true},
    {"tabs inside and around a value", "HTTP/1.1 200 OK\r\nX-A:\t a\tb \t\r\nContent-Length: 2\r\n\r\n", 200, 11, 2, true},
    {"obs-text in a value", "HTTP/1.1 200 OK\r\nX-Name: J\xfcrgen \xff\r\nContent-Length: 2\r\n\r\n", 200, 11, 2, true},
    {"empty value", "HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Blank:   \r\nContent-Length: 2\r\n\r\n", 200, 11, 2, true},
    {"HTTP/1.0 without keep-alive", "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", 200, 10, 3, false},
    {"HTTP/1.0 with keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\n", 200, 10, 3, true},
    {"HTTP/1.0 with close and keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 3\r\n\r\n",
     200, 10, 3, false},
    {"HTTP/1.1 close", "HTTP/1.1 500 Oops\r\nContent-Length: 3\r\nConnection: CLOSE\r\n\r\n", 500, 11, 3, false},
    {"Connection names other fields",
     "HTTP/1.1 200 OK\r\nConnection: X-Hop, x-other\r\nX-Hop: 1\r\nX-Keep: 2\r\nX-OTHER: 3\r\nContent-Length: 4\r\n\r\n", 200,
     11, 4, true},
    {"several Connection fields",
     "HTTP/1.1 200 OK\r\nConnection: x-a\r\nX-A: 1\r\nConnection: ,, x-b ,close\r\nX-B: 2\r\nContent-Length: 4\r\n\r\n", 200,
     11, 4, false},
    {"Connection naming framing fields", "HTTP/1.1 200 OK\r\nConnection: content-length, host, transfer-encoding\r\nHost: h\r\n"
     "Content-Length: 7\r\n\r\n", 200, 11, 7, true},
    {"empty Connection", "HTTP/1.1 200 OK\r\nConnection:\r\nContent-Length: 7\r\n\r\n", 200, 11, 7, true},
    {"hop-by-hop fields", "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\n"
     "Content-Length: 7\r\n\r\n", 200, 11, 7, true},
    {"lower-case names, leading zeros", "HTTP/1.1 201 Created\r\ncontent-length: 007\r\nlocation: /x\r\n\r\n", 201, 11, 7,
     true},
    {"no space after colon", "HTTP/1.1 200 OK\r\nContent-Length:12\r\nX-A:b\r\n\r\n", 200, 11, 12, true},
    {"Content-Length of 2^62", "HTTP/1.1 200 OK\r\nContent-Length: 4611686018427387904\r\n\r\n", 200, 11,
     std::uint64_t{1} << 62, true},
    {"lowest and highest status", "HTTP/1.1 599 Whatever\r\nContent-Length: 0\r\n\r\n", 599, 11, 0, true},
    {"status 200", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, 11, 0, true},
    {"token characters in names", "HTTP/1.1 200 OK\r\nX-!#$%&'*+-.^_`|~0: v\r\nContent-Length: 0\r\n\r\n", 200, 11, 0, true},
    {"Strict-Transport-Security from the instance",
     "HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=1\r\nContent-Length: 0\r\n\r\n", 200, 11, 0, true},
};

const std::pair<const char*, std::string_view> rejected[] = {
    {"HTTP/2 status line", "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"},
    {"HTTP/1.2", "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n"},
    {"lower-case version", "http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
    {"no space before the reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"},
    {"two spaces after the version", "HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n"},
    {"two-digit status", "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"},
    {"four-digit status", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"},
    {"1xx status", "HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n"},
    {"101 status", "HTTP/1.1 101 Switching Protocols\r\nContent-Length: 0\r\n\r\n"},
    {"204 status", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"},
    {"304 status", "HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n"},
    {"status above 599", "HTTP/1.1 600 X\r\nContent-Length: 0\r\n\r\n"},
    {"control character in the reason", "HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n"},
    {"DEL in the reason", "HTTP/1.1 200 O\x7fK\r\nContent-Length: 0\r\n\r\n"},
    {"bare CR in the reason", "HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n"},
    {"bare LF in the reason", "HTTP/1.1 200 O\nK\r\nContent-Length: 0\r\n\r\n"},
    {"no Content-Length", "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"},
    {"two Content-Length fields", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"},
    {"Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n"},
    {"Content-Length with a sign", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n"},
    {"negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"},
    {"empty Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n"},
    {"Content-Length with a space inside", "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n"},
    {"Content-Length above 2^62", "HTTP/1.1 200 OK\r\nContent-Length: 4611686018427387905\r\n\r\n"},
    {"Content-Length overflowing 64 bits", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n"},
    {"Transfer-Encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
    {"Transfer-Encoding with Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\ntransfer-encoding: gzip\r\n\r\n"},
    {"Proxy-Connection", "HTTP/1.1 200 OK\r\nProxy-Connection: close\r\nContent-Length: 1\r\n\r\n"},
    {"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n  b\r\nContent-Length: 1\r\n\r\n"},
    {"obs-fold with a tab", "HTTP/1.1 200 OK\r\nX-A: a\r\n\tb\r\nContent-Length: 1\r\n\r\n"},
    {"space before the colon", "HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 1\r\n\r\n"},
    {"tab before the colon", "HTTP/1.1 200 OK\r\nContent-Length\t: 1\r\n\r\n"},
    {"empty name", "HTTP/1.1 200 OK\r\n: a\r\nContent-Length: 1\r\n\r\n"},
    {"separator in a name", "HTTP/1.1 200 OK\r\nX(A): a\r\nContent-Length: 1\r\n\r\n"},
    {"obs-text in a name", "HTTP/1.1 200 OK\r\nX-\xe9: a\r\nContent-Length: 1\r\n\r\n"},
    {"line without a colon", "HTTP/1.1 200 OK\r\nX-A a\r\nContent-Length: 1\r\n\r\n"},
    {"bare CR in a value", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 1\r\n\r\n"},
    {"bare LF in a value", "HTTP/1.1 200 OK\r\nX-A: a\nb\r\nContent-Length: 1\r\n\r\n"},
    {"CR before CRLF", "HTTP/1.1 200 OK\r\nX-A: a\r\r\nContent-Length: 1\r\n\r\n"},
    {"NUL in a value", std::string_view("HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 1\r\n\r\n", 50)},
    {"DEL in a value", "HTTP/1.1 200 OK\r\nX-A: a\x7f\r\nContent-Length: 1\r\n\r\n"},
    {"bad Connection list", "HTTP/1.1 200 OK\r\nConnection: a b\r\nContent-Length: 1\r\n\r\n"},
    {"bad Connection token", "HTTP/1.1 200 OK\r\nConnection: a/b\r\nContent-Length: 1\r\n\r\n"},
    {"head not complete", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"},
    {"data after the head", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"},
    {"empty input", ""},
    {"status line only", "HTTP/1.1 200 OK\r\n"},
};

std::string many_fields(int n) {
  std::string h = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n";
  for (int i = 1; i < n; ++i) h += "X-F" + std::to_string(i) + ": v\r\n";
  return h + "\r\n";
}

std::string many_connection_names(int n) {
  std::string h = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close";
  for (int i = 0; i < n; ++i) h += ", x-n" + std::to_string(i);
  return h + "\r\n\r\n";
}

// A head of exactly `size` bytes whose Connection field, after a long one, names a field that
// comes last (so its offset in the head is large).
std::string sized_head(std::size_t size) {
  std::string h = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Big: ";
  const std::string tail = "\r\nConnection: x-late\r\nX-Late: 1\r\n\r\n";
  h.append(size - h.size() - tail.size(), 'a');
  return h + tail;
}

// A random plain head from a seeded generator: field names, values, order, case and Connection
// tokens all vary.
std::string random_head(std::mt19937& rng) {
  auto pick = [&](const auto& list) { return list[rng() % std::size(list)]; };
  auto mangle_case = [&](std::string s) {
    for (auto& c : s) {
      if (rng() % 3 == 0) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : (c >= 'A' && c <= 'Z' ? c + 32 : c));
    }
    return s;
  };
  static const char* const statuses[] = {"200", "201", "202", "206", "299", "301", "302", "307", "400",
                                         "401", "404", "418", "429", "500", "502", "503", "599"};
  static const char* const reasons[] = {"", "OK", "Whatever", "Not\tFound", "caf\xc3\xa9", " spaced ", "x"};
  static const char* const names[] = {"Server",  "Date",    "Content-Type", "ETag",  "Last-Modified",
                                      "Vary",    "X-A",     "x-b",          "Set-Cookie", "Keep-Alive",
                                      "TE",      "Trailer", "Upgrade",      "Strict-Transport-Security",
                                      "X-Hop",   "x-hop2",  "Host",         "Age",   "Cache-Control"};
  static const char* const values[] = {"v", "", " padded ", "\ta\tb\t", "J\xfcrgen", "a, b", "\"etag\"",
                                       "Mon, 01 Jan 2024 00:00:00 GMT", "max-age=5", "x=1; Path=/"};
  static const char* const tokens[] = {"close", "keep-alive", "X-Hop", "x-HOP2", "Upgrade", "TE", "Host",
                                       "Content-Length", "Transfer-Encoding", "ETag", "strict-transport-security",
                                       "Nothing-Here", "Vary", ""};
  static const char* const separators[] = {",", ", ", " ,", " , ", ",,", "\t,\t"};

  std::vector<std::string> lines;
  int n = static_cast<int>(rng() % 16);
  for (int i = 0; i < n; ++i) lines.push_back(mangle_case(pick(names)) + ":" + (rng() % 4 ? " " : "") + pick(values));
  int connections = static_cast<int>(rng() % 4);
  for (int i = 0; i < connections; ++i) {
    std::string v;
    int k = static_cast<int>(rng() % 4);
    for (int j = 0; j < k; ++j) {
      if (j > 0) v += pick(separators);
      v += mangle_case(pick(tokens));
    }
    lines.push_back(mangle_case("Connection") + ": " + v);
  }
  lines.push_back(mangle_case("Content-Length") + ": " + std::to_string(rng() % 100000));
  std::shuffle(lines.begin(), lines.end(), rng);
  std::string head = std::string(rng() % 4 ? "HTTP/1.1 " : "HTTP/1.0 ") + pick(statuses) + " " + pick(reasons) + "\r\n";
  for (const auto& l : lines) head += l + "\r\n";
  return head + "\r\n";
}

}  // namespace

TEST_CASE("response head: plain heads are accepted", "[response_head]") {
  for (const auto& c : accepted) {
    INFO(c.what);
    auto r = scan(c.head);
    REQUIRE(r);
    CHECK(r->status == c.status);
    CHECK(r->version == c.version);
    CHECK(r->content_length == c.content_length);
    CHECK(r->keep_alive == c.keep_alive);
  }
  CHECK(scan(many_fields(100)));
  CHECK(scan(many_connection_names(16)));
  CHECK(scan(sized_head(65535)));
}

TEST_CASE("response head: anything else is left to Beast", "[response_head]") {
  for (const auto& [what, head] : rejected) {
    INFO(what);
    CHECK_FALSE(scan(head));
  }
  CHECK_FALSE(scan(many_fields(101)));
  CHECK_FALSE(scan(many_connection_names(17)));
  CHECK_FALSE(scan(sized_head(65536)));  // names are kept as 16-bit offsets
}

TEST_CASE("response head: X-Accel-Buffering: no asks for the response to stream", "[response_head]") {
  // The scan's result points into the head: each head is kept in a local while it is used.
  auto with = [](std::string_view fields) {
    return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + std::string(fields) + "\r\n";
  };
  for (std::string_view field : {"X-Accel-Buffering: no\r\n", "x-accel-buffering:NO\r\n", "X-ACCEL-BUFFERING:  No \t\r\n"}) {
    INFO(field);
    const std::string head = with(field);
    auto r = scan(head);
    REQUIRE(r);
    CHECK(r->no_buffering);
    // Passed on as the instance sent it (whitespace normalised): a proxy in front streams too.
    CHECK(lowered(fast_path(head, *r, true, 11, {})).find("x-accel-buffering: no\r\n") != std::string::npos);
  }
  for (std::string_view field : {"X-Accel-Buffering: yes\r\n", "X-Accel-Buffering: nope\r\n", "X-Accel-Buffering:\r\n",
                                 "X-Accel: no\r\n", ""}) {
    INFO(field);
    const std::string head = with(field);
    auto r = scan(head);
    REQUIRE(r);
    CHECK_FALSE(r->no_buffering);
  }
  // Repeated: the last one decides, as in nginx.
  const std::string no_last = with("X-Accel-Buffering: yes\r\nX-Accel-Buffering: no\r\n");
  const std::string yes_last = with("X-Accel-Buffering: no\r\nX-Accel-Buffering: yes\r\n");
  auto streams = scan(no_last);
  auto holds = scan(yes_last);
  REQUIRE(streams);
  REQUIRE(holds);
  CHECK(streams->no_buffering);
  CHECK_FALSE(holds->no_buffering);
}

TEST_CASE("response head: the client gets the fields without hop-by-hop ones", "[response_head]") {
  std::string_view head =
      "HTTP/1.0 404 \r\nServer: s\r\nConnection: keep-alive, X-Hop\r\nX-Hop: h\r\nKeep-Alive: timeout=5\r\n"
      "X-Pad:   p \t\r\nStrict-Transport-Security: max-age=1\r\nContent-Length: 3\r\n\r\n";
  auto r = scan(head);
  REQUIRE(r);
  CHECK(fast_path(head, *r, true, 11, {}) ==
        "HTTP/1.1 404 Not Found\r\nServer: s\r\nX-Pad: p\r\nStrict-Transport-Security: max-age=1\r\n"
        "Content-Length: 3\r\n\r\n");
  CHECK(fast_path(head, *r, true, 10, hsts_value) ==
        "HTTP/1.1 404 Not Found\r\nServer: s\r\nX-Pad: p\r\nContent-Length: 3\r\n"
        "Strict-Transport-Security: max-age=31536000\r\nConnection: keep-alive\r\n\r\n");
  std::string out = "kept";
  append_plain_response(head, *r, false, 11, {}, {}, out);
  CHECK(out.starts_with("keptHTTP/1.1 404 Not Found\r\n"));
  CHECK(out.ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"));
}

TEST_CASE("response head: a Date is added only where the instance sent none", "[response_head]") {
  constexpr std::string_view date = "Sun, 06 Nov 1994 08:49:37 GMT";
  std::string_view undated = "HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 3\r\n\r\n";
  auto r = scan(undated);
  REQUIRE(r);
  CHECK_FALSE(r->has_date);
  CHECK(fast_path(undated, *r, false, 11, hsts_value, date) ==
        "HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 3\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        "Strict-Transport-Security: max-age=31536000\r\nConnection: close\r\n\r\n");
  for (std::string_view dated : {"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 3\r\n\r\n",
                                 "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nDATE:x\r\n\r\n"}) {
    auto d = scan(dated);
    REQUIRE(d);
    CHECK(d->has_date);
  }
  // A Date named in Connection is dropped as hop-by-hop, so it does not count.
  for (std::string_view named : {"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nConnection: date\r\nContent-Length: 3\r\n\r\n",
                                 "HTTP/1.1 200 OK\r\nConnection: x, DATE\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 3\r\n\r\n"}) {
    auto d = scan(named);
    REQUIRE(d);
    CHECK_FALSE(d->has_date);
    const auto out = fast_path(named, *d, true, 11, {}, date);
    CHECK(out.find("Mon, 01 Jan 2024") == std::string::npos);
    CHECK(out.find("\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n") != std::string::npos);
  }
  // Names that only start like it are not a Date.
  auto other = scan("HTTP/1.1 200 OK\r\nDates: 1\r\nDat: 2\r\nContent-Length: 3\r\n\r\n");
  REQUIRE(other);
  CHECK_FALSE(other->has_date);
}

TEST_CASE("response head: the fast path matches the Beast path on a corpus", "[response_head]") {
  for (const auto& c : accepted) check_against_beast(c.head);
  check_against_beast(many_fields(100));
  check_against_beast(many_connection_names(16));
  check_against_beast(sized_head(65535));  // X-Late, named at offset ~65500, is dropped
  const std::string_view extra[] = {
      "HTTP/1.1 200 OK\r\nServer: nginx/1.25.3\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Type: text/html\r\n"
      "Content-Length: 615\r\nLast-Modified: Tue, 24 Oct 2023 13:46:47 GMT\r\nConnection: keep-alive\r\n"
      "ETag: \"6537cac7-267\"\r\nAccept-Ranges: bytes\r\n\r\n",
      "HTTP/1.1 302 Found\r\nLocation: https://example.com/\r\nContent-Length: 0\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
      "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 10\r\nConnection: close\r\n\r\n",
      "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\nkeep-alive: timeout=5, max=100\r\ncontent-length: 1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nConnection: Strict-Transport-Security\r\nStrict-Transport-Security: max-age=9\r\n"
      "Content-Length: 1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nX-A: 3\r\nContent-Length: 1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nConnection: x-a\r\nX-A: 1\r\nx-a: 2\r\nX-B: 3\r\nContent-Length: 1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nConnection: close, close\r\nContent-Length: 1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n",
      "HTTP/1.1 418 I'm a teapot\r\nContent-Length: 1\r\n\r\n",
      "HTTP/1.1 418 \r\nContent-Length: 1\r\n\r\n",
      "HTTP/1.1 299 \r\nContent-Length: 1\r\n\r\n",
      "HTTP/1.0 500 \r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length:\t1\t\r\nX-T:\t\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
  };
  for (auto head : extra) check_against_beast(head);
}

TEST_CASE("response head: the fast path matches the Beast path on random heads", "[response_head]") {
  std::mt19937 rng(20240607);
  int checked = 0;
  for (int i = 0; i < 1500; ++i) {
    auto head = random_head(rng);
    // Only a Connection list with more than 16 names is refused: never generated here.
    if (!scan(head)) {
      INFO("head: " << head);
      FAIL("a generated plain head was refused");
    }
    check_against_beast(head);
    ++checked;
  }
  CHECK(checked == 1500);
}
