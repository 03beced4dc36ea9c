// libFuzzer target: an instance's response head -> the plain-response fast path
// (proxy/response_head.hpp). Whatever scan_plain_response accepts, Beast must read the same way
// (status, Content-Length, X-Accel-Buffering; never keep-alive where Beast would close), and the head that
// append_plain_response writes must read back, by Beast and by the scanner, as one head with the
// same status and Content-Length, the keep-alive asked for, and no hop-by-hop field left.
#include <boost/beast/http.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/framing.hpp"
#include "proxy/response_head.hpp"

namespace {

namespace http = boost::beast::http;

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "response_fuzz: %s\ninput (%zu bytes): %.*s\n", what, input.size(),
               static_cast<int>(std::min<std::size_t>(input.size(), 2000)), input.data());
  std::abort();
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (std::tolower(x) != std::tolower(y)) return false;
  }
  return true;
}

// Beast's reading of a head: false when it refuses it.
bool beast_reads(std::string_view head, http::response_parser<http::empty_body>& p) {
  p.body_limit(boost::none);
  boost::beast::error_code ec;
  std::size_t used = p.put(boost::asio::buffer(head.data(), head.size()), ec);
  return (!ec || ec == http::error::need_more) && p.is_header_done() && used == head.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace wakegate::proxy;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::size_t end = find_head_end(bytes);
  if (end == 0 || end == std::string_view::npos) return 0;
  std::string_view head = bytes.substr(0, end);
  plain_response r;
  if (!scan_plain_response(head, r)) return 0;

  http::response_parser<http::empty_body> p;
  if (!beast_reads(head, p)) fail("Beast refuses a head the fast path accepts", head);
  if (p.get().result_int() != r.status) fail("status differs from Beast's", head);
  if (!p.content_length() || *p.content_length() != r.content_length) fail("Content-Length differs from Beast's", head);
  if (r.keep_alive && !p.keep_alive()) fail("keep-alive where Beast reads close", head);
  // X-Accel-Buffering: the last one Beast reads decides (its value trimmed, case-insensitive).
  bool no_buffering = false;
  for (const auto& f : p.get())
    if (iequals(std::string_view(f.name_string().data(), f.name_string().size()), "x-accel-buffering"))
      no_buffering = iequals(std::string_view(f.value().data(), f.value().size()), "no");
  if (no_buffering != r.no_buffering) fail("X-Accel-Buffering read otherwise than Beast's field value", head);
  // The fields the instance's Connection fields name, as Beast reads them (not the scanner's
  // own list): none may reach the client.
  std::vector<std::string> named;
  for (const auto& f : p.get()) {
    if (f.name() != http::field::connection) continue;
    for (auto token : http::token_list{f.value()}) {
      std::string_view t(token.data(), token.size());
      if (!iequals(t, "close") && !iequals(t, "keep-alive") && !iequals(t, "content-length") &&
          !iequals(t, "host") && !iequals(t, "transfer-encoding"))
        named.emplace_back(t);
    }
  }

  for (bool keep : {true, false}) {
    for (unsigned client_version : {10u, 11u}) {
      for (std::string_view hsts : {std::string_view{}, std::string_view{"max-age=60"}}) {
        std::string out;
        // The session passes a Date when the instance sent none.
        append_plain_response(head, r, keep, client_version, hsts,
                              r.has_date ? std::string_view{} : std::string_view{"Sun, 06 Nov 1994 08:49:37 GMT"}, out);
        if (find_head_end(out) != out.size()) fail("written head is not exactly one head", out);
        http::response_parser<http::empty_body> q;
        if (!beast_reads(out, q)) fail("Beast refuses the written head", out);
        const auto& msg = q.get();
        if (msg.count(http::field::date) == 0) fail("the written head has no Date", out);
        if (!r.has_date && msg.count(http::field::date) != 1) fail("a Date was added next to the instance's", out);
        if (msg.result_int() != r.status) fail("written status differs", out);
        if (!q.content_length() || *q.content_length() != r.content_length) fail("written Content-Length differs", out);
        if (q.keep_alive() != keep) fail("written keep-alive differs from the one asked for", out);
        for (const auto& f : msg) {
          auto name = f.name_string();
          switch (f.name()) {
            case http::field::keep_alive:
            case http::field::proxy_connection:
            case http::field::te:
            case http::field::trailer:
            case http::field::upgrade:
            case http::field::transfer_encoding:
              fail("a hop-by-hop field is written", out);
            case http::field::connection:
              if (f.value() != "close" && f.value() != "keep-alive") fail("the instance's Connection is written", out);
              break;
            case http::field::strict_transport_security:
              if (!hsts.empty() && f.value() != hsts) fail("the instance's HSTS is written over wakegate's", out);
              break;
            default:
              for (const auto& n : named)
                if (iequals(name, n)) fail("a field named in Connection is written", out);
          }
        }
        // Read again as plain (unless wakegate's own fields took it past the 100-field limit).
        if (r.field_count + 3 > 100) continue;
        plain_response again;
        if (!scan_plain_response(out, again)) fail("the written head is not plain any more", out);
        if (again.status != r.status || again.content_length != r.content_length)
          fail("the written head scans differently", out);
      }
    }
  }
  return 0;
}
