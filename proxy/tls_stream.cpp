#include "proxy/tls_stream.hpp"

#include <cerrno>
#include <memory>
#include <vector>

#include <openssl/err.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/system/system_error.hpp>

namespace wakegate::proxy {

namespace asio = boost::asio;

namespace {

std::vector<std::unique_ptr<char[]>>& free_list() {
  thread_local std::vector<std::unique_ptr<char[]>> pool;
  return pool;
}

// Not a TLS record's end: what OpenSSL reports for a peer that closed without close_notify.
bool unexpected_eof(unsigned long e) {
  return ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

}  // namespace

void tls_stream::give_back::operator()(char* p) const noexcept {
  auto& pool = free_list();
  if (pool.size() < 16) pool.emplace_back(p);  // at most 256 KiB kept per thread
  else delete[] p;
}

tls_stream::scratch tls_stream::borrow() {
  auto& pool = free_list();
  if (pool.empty()) return scratch(new char[record_size]);
  scratch s(pool.back().release());
  pool.pop_back();
  return s;
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
  // (A write that waits is retried with the same pointer and length: no moving write buffer.)
  SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE);
  SSL_set_read_ahead(ssl_, 1);
  SSL_set_accept_state(ssl_);
}

tls_stream::~tls_stream() { SSL_free(ssl_); }  // the socket closes after, with socket_

tls_stream::next tls_stream::step(kind k, char* data, std::size_t size, std::size_t& n,
                                  boost::system::error_code& ec) noexcept {
  if (broken_ && (k == kind::write || k == kind::shutdown)) {
    ec = asio::error::broken_pipe;
    return next::done;
  }
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
      r = SSL_write_ex(ssl_, data, size < record_size ? size : record_size, &n);
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
    default:
      break;
  }
  // A fatal error: OpenSSL's connection may not be used for writes or shutdown any more.
  broken_ = true;
  const int sys = errno;
  const unsigned long e = ERR_peek_error();
  ERR_clear_error();
  if (err == SSL_ERROR_SYSCALL && e == 0 && sys != 0)
    ec = boost::system::error_code(sys, asio::error::get_system_category());
  else if ((err == SSL_ERROR_SYSCALL && e == 0) || unexpected_eof(e))  // an end with no close_notify
    ec = asio::ssl::error::stream_truncated;
  else if (e != 0)
    ec = boost::system::error_code(static_cast<int>(e), asio::error::get_ssl_category());
  else  // an SSL_get_error answer this stream does not wait on (X509 lookup, async jobs)
    ec = asio::error::operation_not_supported;
  return next::done;
}

}  // namespace wakegate::proxy
