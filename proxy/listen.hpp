// Config listen address -> socket address, for the proxy and the admin listeners.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "config/config.hpp"

namespace wakegate::proxy {

// Throws boost::system::system_error for an address that is not an IP literal or "localhost".
inline boost::asio::ip::tcp::endpoint listen_endpoint(const config::endpoint& e) {
  return {boost::asio::ip::make_address(e.host == "localhost" ? "127.0.0.1" : e.host), e.port};
}

}  // namespace wakegate::proxy
