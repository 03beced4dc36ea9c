#include "proxy/listen.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

namespace wakegate::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::string endpoint_text(const tcp::endpoint& ep) {
  const auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

namespace {

[[noreturn]] void fail(std::string_view listener, const tcp::endpoint& ep, const boost::system::error_code& ec) {
  std::string why = ec.message();
  if (ec == asio::error::address_in_use) why += " (another process, or another of this config's listeners, has it)";
  throw listen_error(std::string(listener) + " listener " + endpoint_text(ep) + ": " + why);
}

// Like our listeners (SO_REUSEADDR: a port with connections in TIME_WAIT is free), without SO_REUSEPORT.
void open_socket(tcp::acceptor& a, const tcp::endpoint& ep, std::string_view listener) {
  boost::system::error_code ec;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) fail(listener, ep, ec);
}

}  // namespace

listen_lock& listen_lock::operator=(listen_lock&& o) noexcept {
  if (this != &o) {
    release();
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

void listen_lock::release() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

namespace {

listen_lock lock_address(const tcp::endpoint& ep, std::string_view listener) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(listener, ep, boost::system::error_code(errno, boost::system::system_category()));
  listen_lock lock(fd);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string name = "wakegate-listen " + endpoint_text(ep);  // after the leading NUL: abstract
  const std::size_t n = std::min(name.size(), sizeof addr.sun_path - 1);
  std::memcpy(addr.sun_path + 1, name.data(), n);
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    if (errno == EADDRINUSE)
      throw listen_error(std::string(listener) + " listener " + endpoint_text(ep) +
                         ": another wakegate listens there (it started at the same time as this one)");
    fail(listener, ep, boost::system::error_code(errno, boost::system::system_category()));
  }
  return lock;
}

}  // namespace

listen_lock open_listener(tcp::acceptor& acceptor, const tcp::endpoint& ep, std::string_view listener, bool share_port,
                          bool first) {
  boost::system::error_code ec;
  listen_lock lock;
  if (share_port && first && ep.port() != 0) {
    tcp::acceptor probe(acceptor.get_executor());
    open_socket(probe, ep, listener);
    probe.bind(ep, ec);
    if (ec) fail(listener, ep, ec);
    lock = lock_address(ep, listener);
  }
  open_socket(acceptor, ep, listener);
  if (share_port) {
    int one = 1;
    if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      fail(listener, ep, boost::system::error_code(errno, boost::system::system_category()));
  }
  acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail(listener, ep, ec);
  return lock;
}

}  // namespace wakegate::proxy
