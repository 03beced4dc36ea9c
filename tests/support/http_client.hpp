// A small HTTP/1.1 client for integration tests (Boost.Beast parser over an Asio socket, one
// io_context per connection, every read and write with a deadline). Requests can stream their body
// from a generator and responses can stream theirs into a callback; the request is written while
// the response is read, so echoing servers and early answers (e.g. 503 before the body) work.
// Errors are values: nothing throws.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wakegate::test {

using namespace std::chrono_literals;

using header_list = std::vector<std::pair<std::string, std::string>>;

// Produces a request body piece by piece: fills buf[0, cap) and returns how many bytes it wrote;
// 0 ends the body.
using body_source = std::function<std::size_t(char* buf, std::size_t cap)>;
// Receives the response body piece by piece (the response's `body` then stays empty).
using body_sink = std::function<void(std::string_view)>;

struct http_request {
  std::string method = "GET";
  std::string target = "/";
  std::string host;     // the Host header; empty: none is sent
  header_list headers;  // sent as given, in order (a Content-Length or Transfer-Encoding here is not added again)
  std::string body;     // a fixed body, sent with Content-Length (unless `source` is set)
  body_source source;   // a streamed body
  std::optional<std::uint64_t> content_length;  // with `source`: sent as Content-Length; unset: chunked
};

struct http_response {
  std::string error;        // empty when a complete response was read; else "connect: ...", "read: ..."
  std::string write_error;  // the request could not be written completely (the response may still be fine)
  int status = 0;           // 0 when no response header arrived
  std::string reason;
  header_list headers;
  std::string body;              // the body, unless a sink was given
  std::uint64_t body_bytes = 0;  // body bytes received
  std::uint64_t bytes_sent = 0;  // request body bytes written
  bool keep_alive = false;
  bool chunked = false;
  std::chrono::milliseconds elapsed{};  // from send() until the response was complete

  bool ok() const { return error.empty(); }
  bool has_header(std::string_view name) const;     // case-insensitive
  std::string header(std::string_view name) const;  // the first value, "" if absent
  std::vector<std::string> header_values(std::string_view name) const;
};

struct client_options {
  std::chrono::milliseconds connect_timeout = 5s;
  std::chrono::milliseconds io_timeout = 30s;  // any single read or write (not a whole transfer)
  std::size_t header_limit = 64 * 1024;
};

// One keep-alive connection to 127.0.0.1:port (or `address`). Not thread-safe: one per thread.
class http_connection {
 public:
  explicit http_connection(std::uint16_t port, client_options options = {}, std::string address = "127.0.0.1");
  ~http_connection();
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  std::string connect();  // "" on success (also when already open)
  bool is_open() const;
  void close();
  // How many TCP connections this object opened (to check keep-alive reuse).
  int connects() const;

  // Writes `req` while reading the response. Connects first if needed; closes afterwards when the
  // response was not keep-alive or anything failed.
  http_response send(const http_request& req, const body_sink& sink = {});
  // Only writes the request (connecting first if needed); "" on success.
  std::string write_request(const http_request& req);
  // Only writes these bytes; "" on success.
  std::string write_raw(std::string_view bytes);
  // Only reads one response (e.g. after write_request). `head` = the request was HEAD.
  http_response read_response(const body_sink& sink = {}, bool head = false);
  // Waits up to `timeout` for the peer to close the connection (reads and discards); true if it did.
  bool wait_peer_close(std::chrono::milliseconds timeout);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// One request on a new connection.
http_response http_send(std::uint16_t port, const http_request& req, const body_sink& sink = {},
                        client_options options = {});
http_response http_get(std::uint16_t port, const std::string& host, const std::string& target = "/",
                       header_list headers = {}, client_options options = {});

// True if a TCP connection to 127.0.0.1:port is accepted (then closed at once).
bool can_connect(std::uint16_t port, std::chrono::milliseconds timeout = 1s);

}  // namespace wakegate::test
