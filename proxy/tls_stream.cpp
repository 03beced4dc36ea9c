#include "proxy/tls_stream.hpp"

#include <cerrno>

#include <openssl/err.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/system/system_error.hpp>

namespace wakegate::proxy {

namespace asio = boost::asio;

namespace {
constexpr std::size_t max_write = 16 * 1024;  // one TLS record's plaintext per call
}

tls_stream::tls_stream(asio::ip::tcp::socket socket, asio::ssl::context& ctx) : socket_(std::move(socket)) {
  ssl_ = SSL_new(ctx.native_handle());
  if (ssl_ == nullptr)
    throw boost::system::system_error(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category(), "SSL_new");
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);  // OpenSSL's own reads and writes must not block the thread
  if (ec || SSL_set_fd(ssl_, static_cast<int>(socket_.native_handle())) != 1) {
    SSL_free(ssl_);
    throw boost::system::system_error(ec ? ec : asio::error::invalid_argument, "tls_stream");
  }
  // A record's buffers only while something is in flight; several records read per system call.
  SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_set_read_ahead(ssl_, 1);
  SSL_set_accept_state(ssl_);
}

tls_stream::~tls_stream() { SSL_free(ssl_); }  // the socket closes after, with socket_

tls_stream::next tls_stream::step(kind k, char* data, std::size_t size, std::size_t& n,
                                  boost::system::error_code& ec) noexcept {
  ERR_clear_error();
  errno = 0;
  int r = 0;
  switch (k) {
    case kind::read:
      if (size == 0) return next::done;
      r = SSL_read_ex(ssl_, data, size, &n);
      break;
    case kind::write:
      if (size == 0) return next::done;
      r = SSL_write_ex(ssl_, data, size < max_write ? size : max_write, &n);
      break;
    case kind::handshake:
      r = SSL_do_handshake(ssl_);
      break;
    case kind::shutdown:
      r = SSL_shutdown(ssl_);
      if (r == 0) r = SSL_shutdown(ssl_);  // close_notify sent: now the peer's
      break;
  }
  if (r == 1) return next::done;
  const int err = SSL_get_error(ssl_, r);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      return next::wait_read;
    case SSL_ERROR_WANT_WRITE:
      return next::wait_write;
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
      ec = asio::error::eof;
      return next::done;
    case SSL_ERROR_SYSCALL:
      if (errno != 0) {
        ec = boost::system::error_code(errno, asio::error::get_system_category());
        return next::done;
      }
      [[fallthrough]];  // an end of the connection with no close_notify (OpenSSL before 3)
    default: {
      const unsigned long e = ERR_peek_error();
      if (e == 0 || ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        ec = asio::ssl::error::stream_truncated;
      else
        ec = boost::system::error_code(static_cast<int>(e), asio::error::get_ssl_category());
      ERR_clear_error();
      return next::done;
    }
  }
}

}  // namespace wakegate::proxy
