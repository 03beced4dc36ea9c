// Message framing toward clients of either HTTP version, checked on the raw bytes: what an
// instance frames one way (Content-Length, chunked, or end at close) reaches each client in a
// framing its version allows.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

#include "tests/support/integration.hpp"

using namespace wakegate::test;
using namespace std::chrono_literals;

namespace {

// Sends `request` on a new connection and reads until the peer closes or `idle` passes with
// nothing new. Returns everything read; `closed` says whether the peer closed.
// A new connection to 127.0.0.1:port with `request` sent on it.
int send_on_new_connection(std::uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  return fd;
}

std::string exchange_raw(std::uint16_t port, const std::string& request, bool& closed,
                         std::chrono::milliseconds idle = 1500ms) {
  int fd = send_on_new_connection(port, request);
  std::string out;
  closed = false;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(idle.count())) <= 0) break;
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      closed = true;
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t k = 0; k < n; ++k) s[k] = static_cast<char>(k % 251);
  return s;
}

// A Date value (IMF-fixdate) as seconds since the epoch; -1 when it is not one.
std::time_t date_seconds(const std::string& value) {
  std::tm tm{};
  const char* end = strptime(value.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return end == value.c_str() + value.size() ? timegm(&tm) : -1;
}

std::time_t wall_now() { return std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()); }

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

TEST_CASE("framing: HTTP/1.0 clients never get chunked responses and 1.1 clients get EOF bodies chunked",
          "[integration][framing]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("f", {"f.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "f"));
  const std::string body = pattern(5000);

  for (std::string target : {"/eof?n=5000", "/eof?n=5000&together=1", "/chunks?n=5000"}) {
    INFO("HTTP/1.0 GET " << target);
    bool closed = false;
    auto raw = exchange_raw(wg.http_port(), "GET " + target + " HTTP/1.0\r\nHost: f.test\r\n\r\n", closed);
    auto split = raw.find("\r\n\r\n");
    REQUIRE(split != std::string::npos);
    auto head = lower(raw.substr(0, split));
    CHECK(raw.starts_with("HTTP/1.1 200"));
    CHECK(head.find("transfer-encoding") == std::string::npos);
    CHECK(raw.substr(split + 4) == body);  // the body as is, ended by the close
    CHECK(closed);
  }

  for (std::string target : {"/eof?n=5000", "/eof?n=5000&together=1", "/chunks?n=5000"}) {
    INFO("HTTP/1.1 GET " << target << ", then a second request on the same connection");
    http_connection conn(wg.http_port());
    auto first = conn.send(http_request{"GET", target, "f.test", {}, {}, {}, {}});
    CHECK(first.status == 200);
    CHECK(first.body == body);
    CHECK(lower(first.header("transfer-encoding")) == "chunked");
    auto second = conn.send(http_request{"GET", "/", "f.test", {}, {}, {}, {}});
    CHECK(second.status == 200);
    CHECK(conn.connects() == 1);  // re-framed, so the client connection stayed open
  }
}

TEST_CASE("framing: an HTTP/1.0 client asking for keep-alive is told so and kept", "[integration][framing]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("k", {"k.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "k"));
  const std::string req = "GET /bytes?n=10 HTTP/1.0\r\nHost: k.test\r\nConnection: keep-alive\r\n\r\n";
  bool closed = false;
  // Two requests on one connection: both answered, and the connection is not closed after them.
  auto raw = exchange_raw(wg.http_port(), req + req, closed, 700ms);
  auto first = raw.find("HTTP/1.1 200");
  auto second = raw.find("HTTP/1.1 200", first + 1);
  CHECK(first == 0);
  CHECK(second != std::string::npos);
  CHECK(lower(raw).find("connection: keep-alive") != std::string::npos);
  CHECK_FALSE(closed);
}

namespace {

// Sends `request` on a new connection and returns what the first read gets (waiting up to 10 s
// for anything at all). With `rest`, then reads on until `rest_size` more bytes came into it
// (each read waiting up to 10 s).
std::string first_read(std::uint16_t port, const std::string& request, std::string* rest = nullptr,
                       std::size_t rest_size = 0) {
  int fd = send_on_new_connection(port, request);
  std::string out;
  char buf[65536];
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 10000) == 1) {
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) out.assign(buf, static_cast<std::size_t>(n));
  }
  while (rest != nullptr && rest->size() < rest_size && ::poll(&p, 1, 10000) == 1) {
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    rest->append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace

TEST_CASE("framing: a small response sent in two pieces reaches the client whole, a large one streams",
          "[integration][framing]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("s", {"s.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  app_status st;
  REQUIRE(wait_one_ready(wg.admin_port(), "s", 15s, &st));

  // The instance sends the head, then the body 300 ms later. Head and body fit in 16 KiB: the
  // client's first read gets both (wakegate wrote them in one piece).
  auto small = first_read(wg.http_port(), "GET /split?n=1000&ms=300 HTTP/1.1\r\nHost: s.test\r\n\r\n");
  INFO("small: " << small.substr(0, 200));
  auto end = small.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  CHECK(small.starts_with("HTTP/1.1 200"));
  CHECK(small.substr(end + 4) == pattern(1000));

  // The same small response with X-Accel-Buffering: no streams: the head alone comes first, with
  // the field passed on, then the body when the instance sends it.
  std::string body;
  auto unheld = first_read(wg.http_port(), "GET /split?n=1000&ms=300&nobuffer=1 HTTP/1.1\r\nHost: s.test\r\n\r\n",
                           &body, 1000);
  INFO("unheld: " << unheld);
  CHECK(unheld.starts_with("HTTP/1.1 200"));
  CHECK(unheld.ends_with("\r\n\r\n"));
  CHECK(lower(unheld).find("x-accel-buffering: no\r\n") != std::string::npos);
  CHECK(body == pattern(1000));

  // 40,000 bytes: more than 16 KiB, so the head goes out as soon as it comes; the body follows
  // when the instance sends it, a second later.
  auto large = first_read(wg.http_port(), "GET /split?n=40000&ms=1000 HTTP/1.1\r\nHost: s.test\r\n\r\n");
  INFO("large: " << large.substr(0, 200));
  CHECK(large.starts_with("HTTP/1.1 200"));
  CHECK(large.ends_with("\r\n\r\n"));
  CHECK(lower(large).find("content-length: 40000") != std::string::npos);

  // The limit is the instance's head plus its body: 16 KiB exactly is held, one byte more is not.
  // The instance's head length comes from asking it directly (for a 5-digit Content-Length; its
  // Date field has a fixed width).
  auto direct = first_read(static_cast<std::uint16_t>(st.instances.front().port),
                           "GET /split?n=10000 HTTP/1.1\r\nHost: s.test\r\n\r\n");
  const auto head_len = direct.find("\r\n\r\n");
  REQUIRE(head_len != std::string::npos);
  const std::size_t n = 16384 - (head_len + 4);
  REQUIRE(n >= 10000);
  for (std::size_t body : {n, n + 1}) {
    INFO("head " << head_len + 4 << " + body " << body);
    auto got = first_read(wg.http_port(), "GET /split?n=" + std::to_string(body) + "&ms=300 HTTP/1.1\r\nHost: s.test\r\n\r\n");
    const auto at = got.find("\r\n\r\n");
    REQUIRE(at != std::string::npos);
    if (body == n)
      CHECK(got.substr(at + 4) == pattern(n));  // held: all of it in the first read
    else
      CHECK(got.size() == at + 4);  // streamed: the head alone first
  }
}

// A status code outside 100-599 is no status (RFC 9110 15): relayed, a client could take the
// next response's bytes for this one's body. Found by black-box testing ("099" went out as "99",
// its body dropped, the connection kept).
TEST_CASE("framing: an instance's status outside 100-599 is answered 502, not relayed", "[integration][framing]") {
  auto [code, expected] = GENERATE(table<std::string, int>({{"099", 502}, {"000", 502}, {"600", 502}, {"599", 599}}));
  INFO("instance status " << code);
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  auto r = http_get(wg.http_port(), "t.test", raw_target("HTTP/1.1 " + code + " Odd\r\nContent-Length: 2\r\n\r\nok"));
  INFO(describe(r));
  CHECK(r.status == expected);
  if (expected == 502) CHECK(contains(r.body, "invalid status code"));
  else CHECK(r.body == "ok");
}

// A response whose transfer codings do not end in chunked runs to the close (RFC 9112 6.3): with a
// Content-Length beside it, readers frame it differently (found by black-box testing: it was
// relayed with both, or chunked a second time). 502, as HAProxy answers.
TEST_CASE("framing: an instance's Transfer-Encoding not ending in chunked is answered 502", "[integration][framing]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  struct row {
    const char* head_fields;
    const char* body;
    int status;
  };
  for (const row& r : {row{"Transfer-Encoding: gzip\r\nContent-Length: 2\r\n", "ok", 502},
                       row{"Transfer-Encoding: identity\r\nContent-Length: 2\r\n", "ok", 502},
                       row{"Content-Length: 2\r\nTransfer-Encoding: identity\r\n", "ok", 502},
                       row{"Transfer-Encoding: chunked, gzip\r\n", "2\r\nok\r\n0\r\n\r\n", 502},
                       row{"Transfer-Encoding: gzip\r\n", "ok", 502},
                       row{"Transfer-Encoding: gzip, chunked\r\n", "2\r\nok\r\n0\r\n\r\n", 200}}) {
    INFO(r.head_fields);
    auto got = http_get(wg.http_port(), "t.test", raw_target(std::string("HTTP/1.1 200 OK\r\n") + r.head_fields + "\r\n" + r.body));
    INFO(describe(got));
    CHECK(got.status == r.status);
    if (r.status == 502) CHECK(contains(got.body, "Transfer-Encoding"));
    else CHECK(got.body == "ok");
  }
}

// RFC 9110 6.6.1: a proxy that forwards a response without a Date adds one, of the time it got it;
// wakegate's own answers are dated too (as nginx's are).
TEST_CASE("framing: every response has one Date: the instance's, else the current time", "[integration][framing]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  auto dated_now = [](const http_response& r, std::time_t before) {
    INFO(describe(r));
    auto dates = r.header_values("date");
    REQUIRE(dates.size() == 1);
    const std::time_t t = date_seconds(dates[0]);
    CHECK(t >= before - 1);  // the cached date lags the clock by at most a tick
    CHECK(t <= wall_now());
  };
  SECTION("a plain response without one (the fast path)") {
    const std::time_t before = wall_now();
    auto r = http_get(wg.http_port(), "t.test", raw_target("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    CHECK(r.status == 200);
    CHECK(r.body == "ok");
    dated_now(r, before);
  }
  SECTION("a chunked response without one (the parser's path)") {
    const std::time_t before = wall_now();
    auto r = http_get(wg.http_port(), "t.test",
                      raw_target("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"));
    CHECK(r.status == 201);
    CHECK(r.body == "ok");
    dated_now(r, before);
  }
  SECTION("the instance's own is kept, on either path") {
    for (std::string_view framing : {"Content-Length: 2\r\n\r\nok", "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"}) {
      auto r = http_get(wg.http_port(), "t.test",
                        raw_target("HTTP/1.1 200 OK\r\ndate: Mon, 01 Jan 2024 00:00:00 GMT\r\n" + std::string(framing)));
      INFO(describe(r));
      CHECK(r.body == "ok");
      CHECK(r.header_values("date") == std::vector<std::string>{"Mon, 01 Jan 2024 00:00:00 GMT"});
    }
  }
  SECTION("wakegate's own answers, and the admin listener's") {
    const std::time_t before = wall_now();
    dated_now(http_get(wg.http_port(), "nobody.test", "/"), before);  // 404
    dated_now(http_get(wg.admin_port(), "", "/healthz"), before);
  }
}

// RFC 9110 8.6: a Content-Length of one value repeated ("2, 2", or two fields) may be taken as that
// value; passed on as it came, a client could read it otherwise than wakegate did.
TEST_CASE("framing: a Content-Length repeated with one value reaches the client once", "[integration][framing]") {
  auto lengths = GENERATE(as<std::string>{}, "Content-Length: 2, 2\r\n", "Content-Length: 2\r\nContent-Length: 2\r\n");
  INFO(lengths);
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  bool closed = false;
  auto got = exchange_raw(wg.http_port(),
                          "GET " + raw_target("HTTP/1.1 200 OK\r\n" + lengths + "\r\nok") + " HTTP/1.1\r\nHost: t.test\r\n\r\n",
                          closed);
  INFO(got);
  CHECK(got.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(lower(got).find("content-length: 2\r\n") != std::string::npos);
  CHECK(lower(got).find("content-length", lower(got).find("content-length") + 1) == std::string::npos);
  CHECK(got.ends_with("\r\n\r\nok"));
}

// Beast ends chunk lines at CR LF only and takes a lone LF for an ordinary byte: a body framed
// "5\nhello\n0\n\n" waited for bytes that never came, until io_timeout (found by black-box
// testing). A LF inside chunk data is data.
TEST_CASE("framing: chunked framing with a bare LF is refused at once: 400 to a client, 502 from an instance",
          "[integration][framing]") {
  auto marker = unique_marker();
  config_yaml c;
  c.extra.push_back("limits: { io_timeout: 60s }");  // the reads below give up far sooner
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  SECTION("a client's body") {
    for (std::string body : {"5\nhello\n0\n\n", "5\r\nhello\n0\r\n\r\n", "5\r\nhello\r\n0\n\n", "5;a=b\n"}) {
      INFO(body);
      bool closed = false;
      auto got = exchange_raw(wg.http_port(), "POST /echo HTTP/1.1\r\nHost: t.test\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
                              closed, 10s);
      INFO(got);
      CHECK(got.starts_with("HTTP/1.1 400 "));
      CHECK(contains(got, "invalid chunked framing"));
      CHECK(closed);
    }
    // A LF in the data is not framing.
    bool closed = false;
    auto got = exchange_raw(wg.http_port(),
                            "POST /echo HTTP/1.1\r\nHost: t.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                            "5\r\na\nb\nc\r\n0\r\n\r\n",
                            closed, 10s);
    INFO(got);
    CHECK(got.starts_with("HTTP/1.1 200 "));
    CHECK(contains(got, "a\nb\nc"));
  }
  SECTION("an instance's body, on a connection the instance keeps open") {
    for (std::string body : {"5\nhello\n0\n\n", "5\r\nhello\n0\r\n\r\n", "5\r\nhello\r\n0\n\n"}) {
      INFO(body);
      client_options quick;
      quick.io_timeout = 3s;  // well before the test app closes its side (10 s)
      http_connection conn(wg.http_port(), quick);
      http_request req;
      req.target = raw_target("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body) + "&keep=1";
      req.host = "t.test";
      auto r = conn.send(req);
      INFO(describe(r));
      // A whole 502 while nothing was sent; once the head and "hello" went out, the client's
      // response is cut short (as for any instance failing mid-body). Either at once.
      const bool refused = r.status == 502 && contains(r.body, "invalid response body: bad ");
      const bool cut = r.status == 200 && contains(r.error, "partial message");
      CHECK((refused || cut));
    }
  }
}
