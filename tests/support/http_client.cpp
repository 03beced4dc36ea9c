#include "tests/support/http_client.hpp"

#include <signal.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <mutex>

// GCC's -Wnull-dereference reports false positives inside Asio's scheduler at -O2.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#pragma GCC diagnostic pop

namespace wakegate::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// A Body whose reader hands every piece to a callback (or appends it to a string), so that large
// responses are counted without being stored.
struct sink_body {
  struct value_type {
    const body_sink* sink = nullptr;
    std::string* store = nullptr;
    std::uint64_t* count = nullptr;
  };

  struct reader {
    value_type& body;

    template <bool isRequest, class Fields>
    reader(http::header<isRequest, Fields>&, value_type& b) : body(b) {}

    void init(const boost::optional<std::uint64_t>&, beast::error_code& ec) { ec = {}; }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      std::size_t n = 0;
      for (auto b : beast::buffers_range_ref(buffers)) {
        std::string_view piece(static_cast<const char*>(b.data()), b.size());
        if (body.sink && *body.sink)
          (*body.sink)(piece);
        else if (body.store)
          body.store->append(piece);
        if (body.count) *body.count += piece.size();
        n += piece.size();
      }
      ec = {};
      return n;
    }

    void finish(beast::error_code& ec) { ec = {}; }
  };
};

using parser_type = http::response_parser<sink_body>;

void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });
}

bool method_has_body_by_default(const std::string& m) {
  return !(m == "GET" || m == "HEAD" || m == "DELETE" || m == "OPTIONS" || m == "TRACE");
}

}  // namespace

// ---- http_response ----------------------------------------------------------------------------

bool http_response::has_header(std::string_view name) const {
  return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return iequals(h.first, name); });
}

std::string http_response::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return {};
}

std::vector<std::string> http_response::header_values(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) out.push_back(v);
  return out;
}

// ---- http_connection ---------------------------------------------------------------------------

struct http_connection::impl {
  impl(std::uint16_t port, client_options opts, std::string address)
      : options(opts), endpoint(net::ip::make_address(address), port), stream(ioc) {}

  client_options options;
  net::io_context ioc;
  tcp::endpoint endpoint;
  beast::tcp_stream stream;
  beast::flat_buffer buffer;  // read buffer, kept across responses on this connection
  int connect_count = 0;

  // Write side of one exchange.
  const http_request* req = nullptr;
  enum class phase { header, fixed_body, streamed, done } wphase = phase::done;
  bool chunked = false;
  std::string piece;
  std::array<char, 64 * 1024> chunk{};
  bool write_done = true;
  beast::error_code write_ec;
  std::uint64_t bytes_sent = 0;

  // Read side of one exchange.
  std::optional<parser_type> parser;
  bool read_done = true;
  beast::error_code read_ec;

  bool open() const { return stream.socket().is_open(); }

  void close() {
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.close();
    buffer.clear();
  }

  std::string connect() {
    if (open()) return {};
    buffer.clear();
    beast::error_code result = net::error::would_block;
    ioc.restart();
    stream.expires_after(options.connect_timeout);
    stream.async_connect(endpoint, [&](beast::error_code ec) { result = ec; });
    ioc.run();
    if (result) {
      stream.close();
      return "connect: " + result.message();
    }
    stream.socket().set_option(tcp::no_delay(true), result);
    ++connect_count;
    return {};
  }

  std::string header_text(const http_request& r, bool& use_chunked) const {
    std::string h = r.method + " " + r.target + " HTTP/1.1\r\n";
    if (!r.host.empty()) h += "Host: " + r.host + "\r\n";
    bool has_length = false, has_te = false;
    for (const auto& [k, v] : r.headers) {
      if (iequals(k, "Content-Length")) has_length = true;
      if (iequals(k, "Transfer-Encoding")) has_te = true;
      h += k + ": " + v + "\r\n";
    }
    use_chunked = false;
    if (r.source) {
      if (has_te) {
        use_chunked = true;  // the caller asked for it explicitly
      } else if (r.content_length) {
        if (!has_length) h += "Content-Length: " + std::to_string(*r.content_length) + "\r\n";
      } else if (!has_length) {
        h += "Transfer-Encoding: chunked\r\n";
        use_chunked = true;
      }
    } else if (!has_length && !has_te && (!r.body.empty() || method_has_body_by_default(r.method))) {
      h += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    }
    h += "\r\n";
    return h;
  }

  // The next piece of the request to write; false when everything was written.
  bool produce(net::const_buffer& out) {
    switch (wphase) {
      case phase::header:
        piece = header_text(*req, chunked);
        wphase = req->source ? phase::streamed : (req->body.empty() ? phase::done : phase::fixed_body);
        out = net::buffer(piece);
        return true;
      case phase::fixed_body:
        wphase = phase::done;
        bytes_sent += req->body.size();
        out = net::buffer(req->body);
        return true;
      case phase::streamed: {
        std::size_t n = req->source(chunk.data(), chunk.size());
        n = std::min(n, chunk.size());
        if (n == 0) {
          wphase = phase::done;
          if (!chunked) return false;
          piece = "0\r\n\r\n";
          out = net::buffer(piece);
          return true;
        }
        bytes_sent += n;
        if (chunked) {
          char size_line[32];
          int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
          piece.assign(size_line, static_cast<std::size_t>(len));
          piece.append(chunk.data(), n);
          piece.append("\r\n");
          out = net::buffer(piece);
        } else {
          out = net::buffer(chunk.data(), n);
        }
        return true;
      }
      case phase::done:
        return false;
    }
    return false;
  }

  void start_write(const http_request& r) {
    req = &r;
    wphase = phase::header;
    write_done = false;
    write_ec = {};
    bytes_sent = 0;
    write_next();
  }

  void write_next() {
    net::const_buffer out;
    if (!produce(out)) {
      write_done = true;
      return;
    }
    stream.expires_after(options.io_timeout);
    net::async_write(stream, out, [this](beast::error_code ec, std::size_t) {
      if (ec) {
        write_ec = ec;
        write_done = true;
        return;
      }
      write_next();
    });
  }

  void start_read(http_response& resp, const body_sink& sink, bool head) {
    parser.emplace();
    parser->body_limit(std::numeric_limits<std::uint64_t>::max());
    parser->header_limit(static_cast<std::uint32_t>(options.header_limit));
    if (head) parser->skip(true);
    auto& body = parser->get().body();
    body.sink = &sink;
    body.store = &resp.body;
    body.count = &resp.body_bytes;
    read_done = false;
    read_ec = {};
    read_next();
  }

  void read_next() {
    if (parser->is_done()) {
      on_read_done({});
      return;
    }
    stream.expires_after(options.io_timeout);
    http::async_read_some(stream, buffer, *parser, [this](beast::error_code ec, std::size_t) {
      if (ec) {
        on_read_done(ec);
        return;
      }
      read_next();
    });
  }

  void on_read_done(beast::error_code ec) {
    read_done = true;
    read_ec = ec;
    // An answer before the whole request was written (or a failed read): stop writing.
    if (!write_done || ec) close();
  }

  void fill(http_response& resp) {
    if (!parser || !parser->is_header_done()) return;
    const auto& msg = parser->get();
    resp.status = static_cast<int>(msg.result_int());
    resp.reason = std::string(msg.reason());
    for (const auto& f : msg) resp.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    resp.keep_alive = msg.keep_alive();
    resp.chunked = msg.chunked();
  }
};

http_connection::http_connection(std::uint16_t port, client_options options, std::string address)
    : impl_(std::make_unique<impl>(port, options, std::move(address))) {
  ignore_sigpipe();
}

http_connection::~http_connection() { impl_->close(); }

std::string http_connection::connect() { return impl_->connect(); }
bool http_connection::is_open() const { return impl_->open(); }
void http_connection::close() { impl_->close(); }
int http_connection::connects() const { return impl_->connect_count; }

http_response http_connection::send(const http_request& req, const body_sink& sink) {
  auto start = std::chrono::steady_clock::now();
  http_response resp;
  if (auto err = impl_->connect(); !err.empty()) {
    resp.error = err;
    return resp;
  }
  auto& d = *impl_;
  d.ioc.restart();
  d.start_write(req);
  d.start_read(resp, sink, req.method == "HEAD");
  d.ioc.run();
  d.fill(resp);
  resp.bytes_sent = d.bytes_sent;
  if (d.write_ec) resp.write_error = "write: " + d.write_ec.message();
  if (d.read_ec) {
    resp.error = "read: " + d.read_ec.message();
  } else if (!d.parser->is_done()) {
    resp.error = "read: incomplete response";
  }
  if (!resp.ok() || !resp.keep_alive || d.write_ec || !d.write_done) d.close();
  resp.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  return resp;
}

std::string http_connection::write_request(const http_request& req) {
  if (auto err = impl_->connect(); !err.empty()) return err;
  auto& d = *impl_;
  d.ioc.restart();
  d.start_write(req);
  d.ioc.run();
  if (d.write_ec) {
    d.close();
    return "write: " + d.write_ec.message();
  }
  return {};
}

std::string http_connection::write_raw(std::string_view bytes) {
  if (auto err = impl_->connect(); !err.empty()) return err;
  auto& d = *impl_;
  d.ioc.restart();
  beast::error_code result = net::error::would_block;
  d.stream.expires_after(d.options.io_timeout);
  net::async_write(d.stream, net::buffer(bytes.data(), bytes.size()),
                   [&](beast::error_code ec, std::size_t) { result = ec; });
  d.ioc.run();
  if (result) {
    d.close();
    return "write: " + result.message();
  }
  return {};
}

http_response http_connection::read_response(const body_sink& sink, bool head) {
  auto start = std::chrono::steady_clock::now();
  http_response resp;
  auto& d = *impl_;
  if (!d.open()) {
    resp.error = "read: not connected";
    return resp;
  }
  d.ioc.restart();
  d.write_done = true;
  d.start_read(resp, sink, head);
  d.ioc.run();
  d.fill(resp);
  if (d.read_ec) {
    resp.error = "read: " + d.read_ec.message();
  } else if (!d.parser->is_done()) {
    resp.error = "read: incomplete response";
  }
  if (!resp.ok() || !resp.keep_alive) d.close();
  resp.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  return resp;
}

bool http_connection::wait_peer_close(std::chrono::milliseconds timeout) {
  auto& d = *impl_;
  if (!d.open()) return true;
  d.ioc.restart();
  std::array<char, 4096> scratch{};
  beast::error_code result;
  bool done = false;
  std::function<void()> next = [&] {
    d.stream.async_read_some(net::buffer(scratch), [&](beast::error_code ec, std::size_t) {
      if (ec) {
        result = ec;
        done = true;
        return;
      }
      next();
    });
  };
  d.stream.expires_after(timeout);
  next();
  d.ioc.run();
  bool closed = done && result != beast::error::timeout;
  d.close();
  return closed;
}

// ---- one-shot helpers ---------------------------------------------------------------------------

http_response http_send(std::uint16_t port, const http_request& req, const body_sink& sink, client_options options) {
  http_connection c(port, options);
  return c.send(req, sink);
}

http_response http_get(std::uint16_t port, const std::string& host, const std::string& target, header_list headers,
                       client_options options) {
  http_request req;
  req.host = host;
  req.target = target;
  req.headers = std::move(headers);
  return http_send(port, req, {}, options);
}

bool can_connect(std::uint16_t port, std::chrono::milliseconds timeout) {
  client_options o;
  o.connect_timeout = timeout;
  http_connection c(port, o);
  return c.connect().empty();
}

}  // namespace wakegate::test
