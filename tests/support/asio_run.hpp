// Running an io_context in a unit test until a condition holds, with a deadline (never a fixed
// sleep), and the "nothing happens in this window" check for what must stay pending.
#pragma once

#include <chrono>

#include <boost/asio/io_context.hpp>

namespace wakegate::test {

// Runs `ioc` until `done()` is true (returns true) or `limit` of wall-clock time passes (false).
template <class Pred>
bool run_until(boost::asio::io_context& ioc, Pred done,
               std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < end) {
    ioc.run_for(std::chrono::milliseconds(10));
    ioc.restart();
  }
  return done();
}

// Runs `ioc` for `window` and reports whether `pending()` held at every turn: for checks that an
// operation is still waiting (a read with nothing to read, a write the peer does not drain).
template <class Pred>
bool stays_pending(boost::asio::io_context& ioc, Pred pending, std::chrono::milliseconds window) {
  const auto end = std::chrono::steady_clock::now() + window;
  while (std::chrono::steady_clock::now() < end) {
    if (!pending()) return false;
    ioc.run_for(std::chrono::milliseconds(5));
    ioc.restart();
  }
  return pending();
}

}  // namespace wakegate::test
