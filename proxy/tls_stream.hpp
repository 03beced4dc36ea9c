// A server-side TLS connection of the https listener: OpenSSL reads and writes the socket itself
// (SSL_set_fd, read-ahead on), and Asio only waits for the socket to be ready, as nginx and HAProxy
// run OpenSSL. An idle connection so holds OpenSSL's state alone: SSL_MODE_RELEASE_BUFFERS
// frees the record buffers while nothing is in flight. beast::ssl_stream (asio::ssl::stream) kept
// two 17 KiB buffers of its own and two more in its OpenSSL BIO pair for the connection's life:
// 76 KiB per idle TLS keep-alive connection against nginx's 16 (bench/tls.sh), and every byte
// copied once more.
//
// The operations Beast and Asio's composed writes need (async_read_some, async_write_some), plus
// the handshake and close_notify. Errors are those of asio::ssl::stream: the peer's close_notify
// is asio::error::eof, an end of the connection without it asio::ssl::error::stream_truncated.
// One read and one write may be outstanding at a time (an upload and a download run at once);
// cancelling the socket (the deadline sweep, a drain) ends a waiting operation with
// operation_aborted. An operation that completes without waiting completes through the executor,
// never inside the call that started it. The stream must outlive its operations, as any Asio
// stream, and only the socket's own thread may use it.
#pragma once

#include <cstddef>
#include <memory>

#include <openssl/ssl.h>

#include <boost/asio/append.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/system/error_code.hpp>

namespace wakegate::proxy {

class tls_stream {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  using next_layer_type = boost::asio::ip::tcp::socket;
  using lowest_layer_type = boost::asio::ip::tcp::socket;

  // Throws boost::system::system_error when OpenSSL cannot make the connection's state.
  tls_stream(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& ctx);
  ~tls_stream();
  tls_stream(const tls_stream&) = delete;
  tls_stream& operator=(const tls_stream&) = delete;

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  next_layer_type& next_layer() noexcept { return socket_; }
  lowest_layer_type& lowest_layer() noexcept { return socket_; }
  SSL* native_handle() noexcept { return ssl_; }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    auto b = first_buffer(buffers);
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        op<true>{this, kind::read, const_cast<char*>(static_cast<const char*>(b.data())), b.size()}, token, socket_);
  }
  // Small leading buffers (a head, a chunk-size line, then data) are gathered into one record of
  // up to 16 KiB, in a buffer borrowed for the write, as Beast's flat_stream did: one record and
  // one system call rather than one per buffer.
  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    auto b = first_buffer(buffers);
    op<true> o{this, kind::write, const_cast<char*>(static_cast<const char*>(b.data())), b.size()};
    if (b.size() < record_size && boost::asio::buffer_size(buffers) > b.size()) {
      o.gathered = borrow();
      o.size = boost::asio::buffer_copy(boost::asio::buffer(o.gathered.get(), record_size), buffers);
      o.data = o.gathered.get();
    }
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(std::move(o), token,
                                                                                           socket_);
  }
  template <class Token>
  auto async_handshake(boost::asio::ssl::stream_base::handshake_type, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(
        op<false>{this, kind::handshake, nullptr, 0}, token, socket_);
  }
  // Sends close_notify, then waits for the peer's. Completes at once (with broken_pipe) after a
  // fatal error or a failed write: OpenSSL must not be asked to shut down then.
  template <class Token>
  auto async_shutdown(Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(op<false>{this, kind::shutdown, nullptr, 0},
                                                                              token, socket_);
  }

 private:
  enum class kind { read, write, handshake, shutdown };
  // What one OpenSSL call asks for next.
  enum class next { done, wait_read, wait_write };

  static constexpr std::size_t record_size = 16 * 1024;  // TLS's largest record plaintext

  // A record-sized buffer from this thread's free list (an idle connection holds none).
  struct give_back {
    void operator()(char* p) const noexcept;
  };
  using scratch = std::unique_ptr<char[], give_back>;
  static scratch borrow();

  // One OpenSSL call for `k`; `n`: bytes read or written; `ec`: how it failed. After a fatal
  // error or a failed write, writes and shutdown fail at once: a write cancelled mid-record
  // leaves that record pending in OpenSSL, and a later write of other bytes would send it.
  next step(kind k, char* data, std::size_t size, std::size_t& n, boost::system::error_code& ec) noexcept;
  // The operation `k` ended with `ec` (a failed wait included).
  void ended(kind k, const boost::system::error_code& ec) noexcept {
    if (ec && (k == kind::write || k == kind::shutdown)) broken_ = true;
  }

  // The first non-empty buffer of a sequence (one TLS record per call: Asio's and Beast's
  // composed writes come back for the rest).
  template <class Buffers>
  static boost::asio::const_buffer first_buffer(const Buffers& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::const_buffer b(*it);
      if (b.size() > 0) return b;
    }
    return {};
  }

  template <bool WithSize>
  struct op {
    tls_stream* s;
    kind k;
    char* data;
    std::size_t size;
    bool waited = false;
    scratch gathered{};  // the gathered record (writes of several small buffers)

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}) {
      if (ec) return finish(self, ec, 0);  // the wait ended: cancelled, or the socket failed
      std::size_t n = 0;
      switch (s->step(k, data, size, n, ec)) {
        case next::wait_read:
          waited = true;
          return s->socket_.async_wait(boost::asio::ip::tcp::socket::wait_read, std::move(self));
        case next::wait_write:
          waited = true;
          return s->socket_.async_wait(boost::asio::ip::tcp::socket::wait_write, std::move(self));
        case next::done:
          break;
      }
      if (!waited) {  // not from inside the initiating call
        auto ex = s->socket_.get_executor();
        return boost::asio::post(ex, boost::asio::append(std::move(self), ec, n));
      }
      finish(self, ec, n);
    }
    // The posted completion.
    template <class Self>
    void operator()(Self& self, boost::system::error_code ec, std::size_t n) {
      finish(self, ec, n);
    }
    template <class Self>
    void finish(Self& self, boost::system::error_code ec, std::size_t n) {
      s->ended(k, ec);
      gathered.reset();  // back to the free list before the handler runs
      if constexpr (WithSize) self.complete(ec, n);
      else self.complete(ec);
    }
  };

  boost::asio::ip::tcp::socket socket_;
  SSL* ssl_ = nullptr;
  bool broken_ = false;  // a fatal error or a failed write: no more writes, no shutdown
};

}  // namespace wakegate::proxy
