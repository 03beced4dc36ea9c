#include "proxy/idle_watch.hpp"

#include <sys/socket.h>

#include <boost/version.hpp>
#include <cerrno>
#include <type_traits>

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) && \
    !defined(BOOST_ASIO_DISABLE_EPOLL)
#define WAKEGATE_IDLE_WATCH_FLAG 1
#include <boost/asio/detail/epoll_reactor.hpp>
#else
#define WAKEGATE_IDLE_WATCH_FLAG 0
#endif

namespace wakegate::proxy::idle_watch {

namespace {

using tcp = boost::asio::ip::tcp;

// recv(MSG_PEEK): readable (bytes or end of stream) or failed, rather than "would block".
bool peer_sent_something(tcp::socket& s) noexcept {
  char c;
  auto n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

#if WAKEGATE_IDLE_WATCH_FLAG
namespace detail = boost::asio::detail;
using descriptor_state = std::remove_pointer_t<detail::epoll_reactor::per_descriptor_data>;
using flags_type = bool[detail::epoll_reactor::max_ops];

// A pointer to the private member descriptor_state::try_speculative_: an explicit instantiation
// may name private members ([temp.spec.general]); the friend function hands the pointer out.
struct flags_tag {
  using type = flags_type descriptor_state::*;
  friend type flags_member(flags_tag);
};
template <flags_tag::type Member>
struct flags_access {
  friend flags_tag::type flags_member(flags_tag) { return Member; }
};
template struct flags_access<&descriptor_state::try_speculative_>;

// The socket's implementation (a protected member of basic_socket), through a derived class.
struct socket_access : tcp::socket {
  static descriptor_state* state(tcp::socket& s) noexcept {
    return (s.*(&socket_access::impl_)).get_implementation().reactor_data_;
  }
};

bool* read_flag(tcp::socket& s) noexcept {
  descriptor_state* st = socket_access::state(s);
  return st == nullptr ? nullptr : &(st->*flags_member(flags_tag{}))[detail::epoll_reactor::read_op];
}
#endif

}  // namespace

bool input_now(tcp::socket& s) noexcept { return peer_sent_something(s); }

bool uses_reactor_flag() noexcept { return WAKEGATE_IDLE_WATCH_FLAG != 0; }

void park([[maybe_unused]] tcp::socket& s) noexcept {
#if WAKEGATE_IDLE_WATCH_FLAG
  if (bool* f = read_flag(s)) *f = false;
#endif
}

bool input_since_park(tcp::socket& s) noexcept {
#if WAKEGATE_IDLE_WATCH_FLAG
  if (bool* f = read_flag(s)) return *f;
#endif
  return peer_sent_something(s);
}

void reuse([[maybe_unused]] tcp::socket& s) noexcept {
#if WAKEGATE_IDLE_WATCH_FLAG
  if (bool* f = read_flag(s)) *f = true;
#endif
}

}  // namespace wakegate::proxy::idle_watch
