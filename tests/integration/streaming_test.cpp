// Large bodies stream through wakegate both ways without being buffered.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/support/integration.hpp"

using namespace wakegate::test;

namespace {

constexpr std::uint64_t mib = 1024 * 1024;

// Deterministic pseudo-random bytes (xorshift64), so that lost, duplicated or reordered pieces
// change the checksum.
struct byte_generator {
  std::uint64_t state = 0x9E3779B97F4A7C15ULL;
  std::uint64_t remaining;
  std::uint64_t checksum = fnv1a_init;

  explicit byte_generator(std::uint64_t total) : remaining(total) {}

  std::size_t operator()(char* buf, std::size_t cap) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(cap, remaining));
    for (std::size_t i = 0; i < n; i += 8) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      std::memcpy(buf + i, &state, std::min<std::size_t>(8, n - i));
    }
    remaining -= n;
    checksum = fnv1a(checksum, std::string_view(buf, n));
    return n;
  }
};

}  // namespace

TEST_CASE("100 MiB streams both ways through wakegate with bounded memory", "[integration][streaming]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("e", {"e.test"}, marker).set("min_instances", "1"));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "e"));

  std::atomic<std::uint64_t> max_rss{0};
  background_sampler rss(
      [&] {
        if (auto v = process_rss_bytes(wg.pid()); v && *v > max_rss.load()) max_rss = *v;
      },
      10ms);
  client_options opts;
  opts.io_timeout = 10s;  // no single read or write of a healthy transfer stalls this long
  http_connection conn(wg.http_port(), opts);

  {
    // POST /echo, Content-Length, read back while still sending.
    constexpr std::uint64_t total = 100 * mib;
    byte_generator gen(total);
    std::uint64_t received = 0;
    std::uint64_t received_sum = fnv1a_init;
    http_request req;
    req.method = "POST";
    req.host = "e.test";
    req.target = "/echo";
    req.source = std::ref(gen);
    req.content_length = total;
    auto r = conn.send(req, [&](std::string_view piece) {
      received += piece.size();
      received_sum = fnv1a(received_sum, piece);
    });
    INFO("echo: " << describe(r) << ", received " << received);
    CHECK(r.ok());
    CHECK(r.write_error.empty());
    CHECK(r.status == 200);
    CHECK(r.bytes_sent == total);
    CHECK(received == total);
    CHECK(received_sum == gen.checksum);
  }

  {
    // POST /echo with a chunked request body (echoed back chunked). Small enough to fit in socket
    // buffers, so that this checks chunked framing apart from full-duplex streaming.
    constexpr std::uint64_t total = 1 * mib + 12345;
    byte_generator gen(total);
    std::uint64_t received = 0;
    std::uint64_t received_sum = fnv1a_init;
    http_request req;
    req.method = "POST";
    req.host = "e.test";
    req.target = "/echo";
    req.source = std::ref(gen);
    auto r = conn.send(req, [&](std::string_view piece) {
      received += piece.size();
      received_sum = fnv1a(received_sum, piece);
    });
    INFO("chunked echo: " << describe(r) << ", received " << received);
    CHECK(r.ok());
    CHECK(r.status == 200);
    CHECK(received == total);
    CHECK(received_sum == gen.checksum);
  }

  {
    // GET /bytes: byte k is k % 251.
    constexpr std::uint64_t total = 100 * mib;
    std::uint64_t received = 0;
    std::uint64_t mismatches = 0;
    http_request req;
    req.host = "e.test";
    req.target = "/bytes?n=" + std::to_string(total);
    auto r = conn.send(req, [&](std::string_view piece) {
      for (unsigned char ch : piece) {
        if (ch != static_cast<unsigned char>(received % 251)) ++mismatches;
        ++received;
      }
    });
    INFO("bytes: " << describe(r) << ", received " << received);
    CHECK(r.ok());
    CHECK(r.status == 200);
    CHECK(r.header("Content-Length") == std::to_string(total));
    CHECK(received == total);
    CHECK(mismatches == 0);
  }

  rss.stop();
  INFO("wakegate max RSS: " << max_rss.load() / mib << " MiB");
  CHECK(max_rss.load() > 0);
  // Sanitizer builds carry shadow memory and quarantine: scripts/sanitize.sh raises the bound.
  std::uint64_t limit_mib = 64;
  if (const char* v = std::getenv("WAKEGATE_TEST_RSS_LIMIT_MIB")) limit_mib = std::strtoull(v, nullptr, 10);
  CHECK(max_rss.load() < limit_mib * mib);

  // Byte counts in the access log.
  CHECK(wg.wait_for_record(
      [](const auto& x) {
        return json_string(x, "type") == "access" && json_string(x, "path") == "/echo" &&
               json_number(x, "bytes_in").value_or(0) == static_cast<double>(100 * mib) &&
               json_number(x, "bytes_out").value_or(0) == static_cast<double>(100 * mib);
      },
      5s));
}

// A chunked response is relayed chunk by chunk, as the instance sends them (server-sent events,
// long polls): the instance sends event K+1 only after the client has event K. Found by black-box
// testing: each chunk used to wait for the next one (Beast's eager read), so events came all at
// once when the stream ended.
TEST_CASE("a chunked response streams: each chunk reaches the client before the instance sends the next",
          "[integration][streaming]") {
  auto marker = unique_marker();
  temp_dir dir;
  const std::string gate = dir.path() + "/gate";
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));

  std::string seen;
  int opened = 0;
  body_sink sink = [&](std::string_view piece) {
    seen += piece;
    for (;;) {  // open the gate of each whole event received
      const std::string event = "event " + std::to_string(opened + 1) + "\n";
      if (seen.find(event) == std::string::npos) break;
      ++opened;
      dir.write("gate." + std::to_string(opened), "");
    }
  };
  http_request req;
  req.host = "t.test";
  req.target = "/events?n=4&gate=" + gate;
  auto r = http_send(wg.http_port(), req, sink);
  INFO(describe(r));
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type") == "text/event-stream");
  CHECK(seen == "event 1\nevent 2\nevent 3\nevent 4\n");  // "late K": event K-1 was held back
}

// A chunked request body is forwarded chunk by chunk too: the instance echoes each chunk, and the
// client sends the next only after the echo of the one before came back. Found by black-box
// testing: the head and the body used to wait for the body's end.
TEST_CASE("a chunked request body streams: each chunk reaches the instance before the client sends the next",
          "[integration][streaming]") {
  auto marker = unique_marker();
  config_yaml c;
  c.apps.push_back(app_yaml("t", {"t.test"}, marker));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));

  // A plain socket: the next chunk is written while the response is still being read.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_fd{fd};
  timeval timeout{5, 0};  // a held chunk: its echo never comes, the read gives up
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(wg.http_port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  auto send_all = [&](const std::string& bytes) {
    return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  };
  auto chunk = [](int k) {
    const std::string data = "chunk " + std::to_string(k) + "\n";
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return size + data + "\r\n";
  };
  REQUIRE(send_all("POST /echo HTTP/1.1\r\nHost: t.test\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(1)));
  std::string received;
  int sent = 1;
  for (int reads = 0; reads < 100 && received.find("\r\n0\r\n\r\n") == std::string::npos; ++reads) {
    char buf[4096];
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;  // timed out (a chunk held back), or closed
    received.append(buf, static_cast<std::size_t>(n));
    if (sent < 4 && received.find("chunk " + std::to_string(sent) + "\n") != std::string::npos) {
      ++sent;
      REQUIRE(send_all(sent < 4 ? chunk(sent) : std::string("0\r\n\r\n")));
    }
  }
  INFO(received);
  CHECK(starts_with(received, "HTTP/1.1 200 OK\r\n"));
  CHECK(sent == 4);  // every echo came back before the next chunk was sent
  CHECK(contains(received, "chunk 3\n\r\n0\r\n\r\n"));
}
