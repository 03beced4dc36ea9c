#include "tests/support/unix_relay.hpp"

#include <unistd.h>

#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cstdlib>
#include <functional>
#include <future>
#include <string_view>
#include <utility>

namespace wakegate::test {

namespace asio = boost::asio;
using unix_socket = asio::local::stream_protocol::socket;

// One relayed connection: the client's side and the target's, each direction pumped until either
// side ends; then both are closed.
struct unix_relay::pair : std::enable_shared_from_this<pair> {
  pair(asio::io_context& ioc, unix_relay& r) : relay(r), client(ioc), target(ioc) {}
  unix_relay& relay;
  unix_socket client, target;
  std::array<char, 16384> to_target{}, to_client{};
  std::string injected;  // a 500 being written to the client instead of relaying its request
  bool hold = false;      // hold_answer picked this connection's request: its answer waits
  std::size_t held = 0;   // bytes of the answer read and not yet written, while `hold`

  void start() {
    pump(client, target, to_target);
    pump(target, client, to_client);
  }
  // Whether the request line of `request` contains `part`.
  static bool line_has(std::string_view request, std::string_view part) {
    return request.substr(0, request.find("\r\n")).find(part) != std::string_view::npos;
  }
  // A request fail_next picked: answered here, then the client's next request is read.
  bool inject_failure(std::string_view request) {
    if (relay.fail_left_ <= 0 || !line_has(request, relay.fail_part_)) return false;
    --relay.fail_left_;
    const std::string body = R"({"message":"failure injected by the test relay"})";
    injected = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
    asio::async_write(client, asio::buffer(injected), [self = shared_from_this()](auto ec, std::size_t) {
      if (ec) return self->close();
      self->pump(self->client, self->target, self->to_target);
    });
    return true;
  }
  void close() {
    boost::system::error_code ignored;
    client.close(ignored);
    target.close(ignored);
  }
  void pump(unix_socket& from, unix_socket& to, std::array<char, 16384>& buf) {
    from.async_read_some(asio::buffer(buf), [self = shared_from_this(), &from, &to, &buf](auto ec, std::size_t n) {
      if (ec) return self->close();
      if (&from == &self->client) {
        const std::string_view request(buf.data(), n);
        if (self->inject_failure(request)) return;
        self->pick_for_holding(request);
      } else if (self->hold) {
        self->held = n;  // written by release()
        return;
      }
      self->forward(from, to, buf, n);
    });
  }
  void forward(unix_socket& from, unix_socket& to, std::array<char, 16384>& buf, std::size_t n) {
    asio::async_write(to, asio::buffer(buf.data(), n), [self = shared_from_this(), &from, &to, &buf](auto wec, std::size_t) {
      if (wec) return self->close();
      self->pump(from, to, buf);
    });
  }
  void pick_for_holding(std::string_view request) {
    if (!relay.holding_ || !line_has(request, relay.hold_part_)) return;
    relay.holding_ = false;
    hold = true;
  }
  void release() {
    if (!hold) return;
    hold = false;
    if (held > 0) forward(target, client, to_client, std::exchange(held, 0));
  }
};

unix_relay::unix_relay(std::string listen_path, std::string target_path)
    : listen_path_(std::move(listen_path)), target_path_(std::move(target_path)), acceptor_(ioc_) {
  ::unlink(listen_path_.c_str());
  acceptor_.open();
  acceptor_.bind(asio::local::stream_protocol::endpoint(listen_path_));
  acceptor_.listen();
  accept_next();
  thread_ = std::thread([this] { ioc_.run(); });
}

unix_relay::~unix_relay() {
  run_on_thread([this] {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& w : open_)
      if (auto p = w.lock()) p->close();
  });
  ioc_.stop();
  thread_.join();
  ::unlink(listen_path_.c_str());
}

void unix_relay::accept_next() {
  auto p = std::make_shared<pair>(ioc_, *this);
  acceptor_.async_accept(p->client, [this, p](boost::system::error_code ec) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      if (cut_) {
        p->close();
      } else {
        boost::system::error_code cec;
        p->target.connect(asio::local::stream_protocol::endpoint(target_path_), cec);
        if (cec) {
          p->close();
        } else {
          ++relayed_;
          std::erase_if(open_, [](const std::weak_ptr<pair>& w) { return w.expired(); });
          open_.push_back(p);
          p->start();
        }
      }
    }
    accept_next();
  });
}

void unix_relay::run_on_thread(const std::function<void()>& f) {
  std::promise<void> done;
  asio::post(ioc_, [&] {
    f();
    done.set_value();
  });
  done.get_future().wait();
}

void unix_relay::cut() {
  run_on_thread([this] {
    cut_ = true;
    for (auto& w : open_)
      if (auto p = w.lock()) p->close();
    open_.clear();
  });
}

void unix_relay::restore() {
  run_on_thread([this] { cut_ = false; });
}

void unix_relay::fail_next(std::string request_line_part, int count) {
  run_on_thread([&] {
    fail_part_ = std::move(request_line_part);
    fail_left_ = count;
  });
}

void unix_relay::hold_answer(std::string request_line_part) {
  run_on_thread([&] {
    hold_part_ = std::move(request_line_part);
    holding_ = true;
  });
}

void unix_relay::release_answers() {
  run_on_thread([this] {
    holding_ = false;
    for (auto& w : open_)
      if (auto p = w.lock()) p->release();
  });
}

std::size_t unix_relay::answers_held() {
  std::size_t n = 0;
  run_on_thread([&] {
    for (auto& w : open_)
      if (auto p = w.lock(); p && p->hold) ++n;
  });
  return n;
}

std::string docker_socket_path() {
  const char* host = std::getenv("DOCKER_HOST");
  constexpr std::string_view scheme = "unix://";
  if (host != nullptr && std::string_view(host).starts_with(scheme)) return std::string(host + scheme.size());
  return "/var/run/docker.sock";
}

}  // namespace wakegate::test
