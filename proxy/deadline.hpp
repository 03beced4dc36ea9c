// Timeouts of a proxy thread's connections without a timer per I/O operation.
//
// Each connection a session uses has a deadline slot: the time by which the operation it is
// waiting on must complete. Arming a slot only stores a number. One timer per thread (the
// sweeper) wakes at the earliest deadline, at most a second ahead, and cancels the socket of every
// slot past its deadline; the session sees operation_aborted with `expired` set and answers as
// for a timeout (408, 504, close). A keep-alive request thus costs no timer-queue work, where
// beast::tcp_stream scheduled and cancelled a timer around every read and write.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include <poll.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/time.hpp"

namespace wakegate::proxy {

struct deadline_slot {
  static constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();
  std::int64_t at_ns = never;                      // steady clock (now_ns)
  boost::asio::ip::tcp::socket* socket = nullptr;  // cancelled when at_ns passes
  bool expired = false;                            // set by the sweep; cleared by arming
  // A client connection watched while this slot's operations serve its request (watch_hangup):
  // when its peer closes or shuts down its sending side, the sweep sets hung_up and cancels
  // `socket` (on every sweep until unwatched, as for `expired`).
  int hangup_fd = -1;
  bool hung_up = false;
  deadline_slot* prev = nullptr;                   // the sweeper's list
  deadline_slot* next = nullptr;

  // The operation ended with `ec`: true when it was cancelled because this slot expired.
  bool timed_out(const boost::system::error_code& ec) const noexcept {
    return expired && ec == boost::asio::error::operation_aborted;
  }
};

// Client hang-ups. A slot can also watch a client connection (watch_hangup): the sweep asks the
// kernel, for all watched connections in one poll(), whether the peer has closed or shut down its
// sending side (POLLRDHUP, which input still unread does not hide), at most every
// hangup_poll_ns and at least every second while any is watched. This costs the request path
// two stores: no read or wait is started on the client, whose events Asio would otherwise
// handle and re-arm around every request.
//
// Lifetime: the sweeper outlives the io_context whose sessions use it (their frames, destroyed
// with the io_context, unregister their slots), and its timer does not: attach() after the
// io_context is built, detach() before it is destroyed.
class deadline_sweeper {
 public:
  deadline_sweeper() = default;
  explicit deadline_sweeper(boost::asio::io_context& ioc) { attach(ioc); }
  deadline_sweeper(const deadline_sweeper&) = delete;
  deadline_sweeper& operator=(const deadline_sweeper&) = delete;

  void attach(boost::asio::io_context& ioc) { timer_.emplace(ioc); }
  void detach() noexcept {
    timer_.reset();
    next_sweep_ns_ = deadline_slot::never;
  }

  // A slot is watched from add to remove (both O(1)); its socket may change in between.
  void add(deadline_slot& s) noexcept {
    s.prev = nullptr;
    s.next = head_;
    if (head_ != nullptr) head_->prev = &s;
    head_ = &s;
  }
  void remove(deadline_slot& s) noexcept {
    if (s.prev != nullptr) s.prev->next = s.next;
    else head_ = s.next;
    if (s.next != nullptr) s.next->prev = s.prev;
    s.prev = s.next = nullptr;
  }

  // The slot's next operation must end by `at_ns` (deadline_slot::never: no limit).
  // `now`: now_ns(), when the caller has it already.
  void arm(deadline_slot& s, std::int64_t at_ns, std::int64_t now) {
    s.at_ns = at_ns;
    s.expired = false;
    // The sweep is never more than a second ahead, so arming a deadline further out (every
    // keep-alive request) touches only the slot.
    if (at_ns < next_sweep_ns_ && timer_) schedule(std::min(at_ns, now + max_step_ns));
  }
  template <class Rep, class Period>
  void arm_after(deadline_slot& s, std::chrono::duration<Rep, Period> d) {
    auto now = now_ns();
    arm(s, now + std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(), now);
  }
  static void disarm(deadline_slot& s) noexcept {
    s.at_ns = deadline_slot::never;
    s.expired = false;
  }
  // From now until unwatch_hangup, a hang-up of the client on `fd` cancels the slot's socket.
  void watch_hangup(deadline_slot& s, int fd) {
    s.hangup_fd = fd;
    s.hung_up = false;
    // A sweep, once scheduled, is never more than a second ahead: only none needs one here.
    if (next_sweep_ns_ == deadline_slot::never && timer_) schedule(now_ns() + max_step_ns);
  }
  static void unwatch_hangup(deadline_slot& s) noexcept {
    s.hangup_fd = -1;
    s.hung_up = false;
  }
  // Every watched slot's deadline is now: each operation waiting on a connection ends as at a
  // timeout (the shutdown deadline: requests still open are cut, answered 504 if nothing of
  // their response was sent yet).
  void expire_all() {
    for (deadline_slot* s = head_; s != nullptr; s = s->next) s->at_ns = 0;
    sweep();
  }

 private:
  static constexpr std::int64_t max_step_ns = 1'000'000'000;  // a sweep at least every second while armed
  static constexpr std::int64_t hangup_poll_ns = 250'000'000;  // watched clients polled at most this often

  void schedule(std::int64_t at_ns) {
    next_sweep_ns_ = at_ns;
    timer_->expires_at(steady::time_point(std::chrono::nanoseconds(at_ns)));
    timer_->async_wait([this](const boost::system::error_code& ec) {
      if (!ec) sweep();
    });
  }

  void sweep() {
    const std::int64_t now = now_ns();
    std::int64_t next = deadline_slot::never;
    const bool poll_now = now - last_hangup_poll_ns_ >= hangup_poll_ns;
    if (poll_now) {
      last_hangup_poll_ns_ = now;
      poll_hangups();
    }
    for (deadline_slot* s = head_; s != nullptr; s = s->next) {
      if (s->hangup_fd >= 0) {
        if (s->hung_up && s->socket != nullptr) {
          boost::system::error_code ignored;
          s->socket->cancel(ignored);
        }
        next = std::min(next, now + (poll_now ? max_step_ns : hangup_poll_ns));
      }
      if (s->at_ns <= now) {
        // Cancelled on every sweep until re-armed: an operation started after the deadline
        // without arming again is cancelled too.
        s->expired = true;
        if (s->socket != nullptr) {
          boost::system::error_code ignored;
          s->socket->cancel(ignored);
        }
        next = std::min(next, now + max_step_ns);
      } else {
        next = std::min(next, s->at_ns);
      }
    }
    next_sweep_ns_ = deadline_slot::never;
    if (next != deadline_slot::never && timer_) schedule(std::min(next, now + max_step_ns));
  }

  // One poll() for every watched client: a peer that closed, shut down its sending side, or
  // reset marks its slot hung up.
  void poll_hangups() {
    polls_.clear();
    polled_.clear();
    for (deadline_slot* s = head_; s != nullptr; s = s->next) {
      if (s->hangup_fd < 0 || s->hung_up) continue;
      polls_.push_back(pollfd{s->hangup_fd, POLLRDHUP, 0});
      polled_.push_back(s);
    }
    if (polls_.empty() || ::poll(polls_.data(), polls_.size(), 0) <= 0) return;
    for (std::size_t i = 0; i < polls_.size(); ++i)
      if ((polls_[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) polled_[i]->hung_up = true;
  }

  std::optional<boost::asio::steady_timer> timer_;
  std::vector<pollfd> polls_;           // poll_hangups' own, kept for reuse
  std::vector<deadline_slot*> polled_;
  std::int64_t last_hangup_poll_ns_ = 0;
  deadline_slot* head_ = nullptr;
  std::int64_t next_sweep_ns_ = deadline_slot::never;
};

// Registers a slot with a sweeper for the life of a scope.
struct deadline_guard {
  deadline_sweeper& sweeper;
  deadline_slot& slot;
  deadline_guard(deadline_sweeper& sw, deadline_slot& s, boost::asio::ip::tcp::socket* sock) : sweeper(sw), slot(s) {
    slot.socket = sock;
    sweeper.add(slot);
  }
  ~deadline_guard() { sweeper.remove(slot); }
  deadline_guard(const deadline_guard&) = delete;
  deadline_guard& operator=(const deadline_guard&) = delete;
};

}  // namespace wakegate::proxy
