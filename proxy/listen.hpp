// Listening sockets for the proxy and the admin listeners: config address -> socket address,
// and binding that names the listener when it fails.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "config/config.hpp"

namespace wakegate::proxy {

// Throws boost::system::system_error for an address that is not an IP literal or "localhost".
inline boost::asio::ip::tcp::endpoint listen_endpoint(const config::endpoint& e) {
  return {boost::asio::ip::make_address(e.host == "localhost" ? "127.0.0.1" : e.host), e.port};
}

// "127.0.0.1:80", "[::1]:80".
std::string endpoint_text(const boost::asio::ip::tcp::endpoint& ep);

// Why a listener could not listen: "http listener 127.0.0.1:80: Address already in use".
struct listen_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Held while wakegate listens on an address with SO_REUSEPORT: an abstract Unix socket named
// after it ("wakegate-listen <address>", per network namespace, as ports are). Two wakegates
// starting at the same instant both pass the probe bind below; only one gets this. Released
// when wakegate stops listening (a new one may start while the old one drains).
class listen_lock {
 public:
  listen_lock() = default;
  explicit listen_lock(int fd) : fd_(fd) {}
  listen_lock(listen_lock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  listen_lock& operator=(listen_lock&& o) noexcept;
  listen_lock(const listen_lock&) = delete;
  listen_lock& operator=(const listen_lock&) = delete;
  ~listen_lock() { release(); }
  void release() noexcept;
  bool held() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Opens `acceptor` on `ep`, binds and listens; throws listen_error naming `listener` (http,
// https, admin). With `share_port`, the socket takes SO_REUSEPORT (one acceptor per proxy
// thread); pass `first` for the first of them: it checks beforehand, with a bind without
// SO_REUSEPORT, that no other socket has the address, so that a second wakegate (or another of
// our listeners on the same address spelled otherwise) is refused instead of silently given
// part of the connections (found by black-box testing), and takes the address's listen_lock
// (returned; none for port 0 or without `first`).
listen_lock open_listener(boost::asio::ip::tcp::acceptor& acceptor, const boost::asio::ip::tcp::endpoint& ep,
                          std::string_view listener, bool share_port, bool first);

}  // namespace wakegate::proxy
