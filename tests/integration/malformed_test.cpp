// Each class of malformed request over a raw socket: wakegate's status, the connection closed,
// and what the instance saw (nothing, or exactly the normalised request). The instance records
// every byte it reads (test_app.py RECORD_FILE).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/integration.hpp"

using namespace wakegate::test;

namespace {

struct malformed_row {
  std::string what;
  std::string head;  // request line + fields, before the Host line; PATH is replaced by a unique path
  std::string tail;  // after the header block (a body)
  int status;
};

std::string replace_path(std::string s, const std::string& path) {
  for (auto p = s.find("PATH"); p != std::string::npos; p = s.find("PATH")) s.replace(p, 4, path);
  return s;
}

}  // namespace

TEST_CASE("malformed requests are answered, closed and never reach the instance", "[integration][framing]") {
  auto marker = unique_marker();
  temp_dir tmp;
  std::string record = tmp.path() + "/record";
  config_yaml c;
  c.extra.push_back("limits: { max_header_bytes: 4KiB, max_headers: 20 }");
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1").env_var("RECORD_FILE", record));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "t"));

  const std::string host = "Host: t.test\r\n";
  const malformed_row rows[] = {
      {"Transfer-Encoding with Content-Length", "POST PATH HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n", 400},
      {"two Content-Length", "POST PATH HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n", "xx", 400},
      {"Content-Length list", "POST PATH HTTP/1.1\r\nContent-Length: 2, 2\r\n", "xx", 400},
      {"Content-Length not a number", "POST PATH HTTP/1.1\r\nContent-Length: 0x2\r\n", "xx", 400},
      {"Content-Length overflow", "POST PATH HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n", "", 400},
      {"Transfer-Encoding gzip (not chunked)", "POST PATH HTTP/1.1\r\nTransfer-Encoding: gzip\r\n", "", 400},
      {"chunked not last", "POST PATH HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n", 400},
      {"chunked twice", "POST PATH HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", 400},
      {"Transfer-Encoding on HTTP/1.0", "POST PATH HTTP/1.0\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", 400},
      {"invalid chunk size", "POST PATH HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n", 400},
      {"invalid chunk extension", "POST PATH HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", "5;\x01\r\nhello\r\n0\r\n\r\n", 400},
      {"trailer fields", "POST PATH HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", "0\r\nHost: other.test\r\n\r\n", 400},
      // Beast takes a LF or NUL inside a quoted extension value; nginx and HAProxy end the line at the LF.
      {"LF in a quoted chunk extension", "POST PATH HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", "5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n", 400},
      {"NUL in a quoted chunk extension", "POST PATH HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
       std::string("5;a=\"x\0y\"\r\nhello\r\n0\r\n\r\n", 23), 400},
      {"obs-fold", "GET PATH HTTP/1.1\r\nX-A: 1\r\n  folded\r\n", "", 400},
      {"whitespace before colon", "GET PATH HTTP/1.1\r\nX-A : 1\r\n", "", 400},
      {"bare CR in value", "GET PATH HTTP/1.1\r\nX-A: 1\rX-B: 2\r\n", "", 400},
      {"bare LF line end", "GET PATH HTTP/1.1\nX-A: 1\r\n", "", 400},
      {"control character in value", "GET PATH HTTP/1.1\r\nX-A: a\x01b\r\n", "", 400},
      {"NUL in value", std::string("GET PATH HTTP/1.1\r\nX-A: a\0b\r\n", 30), "", 400},
      {"invalid header name", "GET PATH HTTP/1.1\r\nX(A): 1\r\n", "", 400},
      {"name resembling Transfer-Encoding", "POST PATH HTTP/1.1\r\nTransfer_Encoding: chunked\r\nContent-Length: 0\r\n", "", 400},
      {"invalid method", "G(T PATH HTTP/1.1\r\n", "", 400},
      // RFC 9112 3.2: an invalid Host value is a 400, not an unknown host (found by black-box testing)
      {"space in Host", "GET PATH HTTP/1.1\r\nHost: t.test x\r\n", "", 400},
      {"userinfo in Host", "GET PATH HTTP/1.1\r\nHost: a@t.test\r\n", "", 400},
      {"path in Host", "GET PATH HTTP/1.1\r\nHost: t.test/x\r\n", "", 400},
      {"space in target", "GET PATH x HTTP/1.1\r\n", "", 400},
      {"control character in target", "GET PATH\x7f HTTP/1.1\r\n", "", 400},
      {"absolute-form target with userinfo", "GET http://u@t.testPATH HTTP/1.1\r\n", "", 400},
      {"absolute-form target of another scheme", "GET ftp://t.testPATH HTTP/1.1\r\n", "", 400},
      {"authority-form target (CONNECT)", "CONNECT t.test:80 HTTP/1.1\r\nX-Path: PATH\r\n", "", 400},
      {"HTTP/0.9 request line", "GET PATH\r\n", "", 400},
      {"HTTP/1.2", "GET PATH HTTP/1.2\r\n", "", 505},
      {"HTTP/2.0", "GET PATH HTTP/2.0\r\n", "", 505},
      {"malformed version", "GET PATH HTTP/1.1x\r\n", "", 400},
      {"header over max_header_bytes", "GET PATH HTTP/1.1\r\nX-A: " + std::string(5000, 'a') + "\r\n", "", 431},
      {"more than max_headers fields", "GET PATH HTTP/1.1\r\n" + [] {
         std::string h;
         for (int i = 0; i < 25; ++i) h += "X-" + std::to_string(i) + ": 1\r\n";
         return h;
       }(), "", 431},
  };
  int n = 0;
  for (const auto& row : rows) {
    std::string path = "/malformed-" + std::to_string(++n);
    std::string bytes = replace_path(row.head, path);
    // The Host line goes last, so that the line under test comes first.
    bytes += row.head.find("Host:") == std::string::npos ? host : "";
    bytes += "\r\n" + row.tail;
    INFO(row.what << ": " << bytes);
    http_connection conn(wg.http_port(), {.connect_timeout = 2s, .io_timeout = 5s});
    REQUIRE(conn.write_raw(bytes).empty());
    auto r = conn.read_response();
    INFO(describe(r));
    CHECK(r.status == row.status);
    CHECK(conn.wait_peer_close(3s));
    CHECK(read_file(record).find(path) == std::string::npos);
  }

  // Normalised forwarding: headers named in Connection dropped, Transfer-Encoding lines joined,
  // a body on GET forwarded with Connection: close (and both connections closed afterwards).
  {
    http_connection conn(wg.http_port());
    REQUIRE(conn.write_raw("POST /normal-1 HTTP/1.1\r\nHost: t.test\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n"
                           "X-Keep: 2\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n0\r\n\r\n").empty());
    auto r = conn.read_response();
    INFO(describe(r));
    CHECK(r.status == 404);  // the test app's answer to POST /normal-1: it was forwarded
    CHECK(r.keep_alive);
    CHECK(wait_until([&] { return read_file(record).find("5\r\nhello\r\n0\r\n\r\n") != std::string::npos; }, 3s));
    std::string seen = read_file(record);
    auto at = seen.find("POST /normal-1 HTTP/1.1\r\n");
    REQUIRE(at != std::string::npos);
    std::string head = seen.substr(at, seen.find("\r\n\r\n", at) - at);
    INFO(head);
    CHECK(head.find("X-Drop") == std::string::npos);
    CHECK(head.find("\r\nX-Keep: 2") != std::string::npos);
    CHECK(head.find("\r\nTransfer-Encoding: gzip, chunked") != std::string::npos);
    CHECK(head.find("Transfer-Encoding: chunked") == std::string::npos);
  }
  {
    http_connection conn(wg.http_port());
    REQUIRE(conn.write_raw("GET /normal-2 HTTP/1.1\r\nHost: t.test\r\nContent-Length: 3\r\n\r\nabc").empty());
    auto r = conn.read_response();
    INFO(describe(r));
    CHECK(r.status == 404);
    CHECK_FALSE(r.keep_alive);
    CHECK(conn.wait_peer_close(3s));
    std::string seen = read_file(record);
    auto at = seen.find("GET /normal-2 HTTP/1.1\r\n");
    REQUIRE(at != std::string::npos);
    std::string req = seen.substr(at, seen.find("\r\n\r\n", at) + 4 - at);
    INFO(req);
    CHECK(req.find("\r\nConnection: close\r\n") != std::string::npos);
    CHECK(seen.substr(at + req.size(), 3) == "abc");
  }
  {
    // Absolute-form (RFC 9112 3.2.2): routed by the target's host, not the Host field, and
    // forwarded in origin-form with that host as the one Host.
    http_connection conn(wg.http_port());
    REQUIRE(conn.write_raw("GET http://T.test/absolute-1?q=1 HTTP/1.1\r\nHost: other.test\r\n\r\n").empty());
    auto r = conn.read_response();
    INFO(describe(r));
    CHECK(r.status == 404);  // the test app's answer to /absolute-1: it was forwarded to t
    CHECK(r.keep_alive);
    std::string seen = read_file(record);
    auto at = seen.find("GET /absolute-1?q=1 HTTP/1.1\r\n");
    REQUIRE(at != std::string::npos);
    std::string head = seen.substr(at, seen.find("\r\n\r\n", at) - at);
    INFO(head);
    CHECK(head.find("\r\nHost: T.test\r\n") != std::string::npos);
    CHECK(head.find("other.test") == std::string::npos);
    CHECK(wg.wait_for_record(
        [](const auto& x) { return json_string(x, "type") == "access" && json_string(x, "path") == "/absolute-1?q=1"; },
        3s));
  }
  CHECK(scrape_value(wg.admin_port(), "wakegate_bad_requests_total", {}).value_or(0) >= std::size(rows));
}
