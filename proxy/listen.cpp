#include "proxy/listen.hpp"

#include <sys/socket.h>

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

void open_listener(tcp::acceptor& acceptor, const tcp::endpoint& ep, std::string_view listener, bool share_port,
                   bool first) {
  boost::system::error_code ec;
  if (share_port && first && ep.port() != 0) {
    tcp::acceptor probe(acceptor.get_executor());
    open_socket(probe, ep, listener);
    probe.bind(ep, ec);
    if (ec) fail(listener, ep, ec);
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
}

}  // namespace wakegate::proxy
