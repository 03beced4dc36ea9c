// A Unix-socket relay a test puts between wakegate and a real daemon (the Docker Engine API), to
// take the daemon away and give it back without touching it: cut() closes every connection
// through the relay and refuses new ones (accepted, then closed at once) until restore().
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace wakegate::test {

class unix_relay {
 public:
  // Listens on `listen_path` (created; removed again on destruction) and relays each connection
  // to `target_path`. Runs on a thread of its own.
  unix_relay(std::string listen_path, std::string target_path);
  ~unix_relay();
  unix_relay(const unix_relay&) = delete;
  unix_relay& operator=(const unix_relay&) = delete;

  const std::string& path() const { return listen_path_; }
  // Both return once the relay thread has done it.
  void cut();
  void restore();
  // Connections relayed to the target so far (refused ones not counted).
  std::size_t relayed() const { return relayed_.load(); }
  // The next `count` requests whose request line starts with `prefix` (e.g. "GET /containers/json"
  // after the API version, matched anywhere in the line) are answered 500 by the relay itself,
  // not passed on: a daemon failing one call. Requests must arrive whole in one read (small ones do).
  void fail_next(std::string request_line_part, int count);
  // The daemon's answer to the next request whose request line contains `request_line_part` is
  // held (the request itself is passed on: the daemon acts on it) until release_answers(): a
  // daemon slow to answer one call. Requests must arrive whole in one read.
  void hold_answer(std::string request_line_part);
  void release_answers();
  // Connections whose answer hold_answer holds now.
  std::size_t answers_held();

 private:
  struct pair;
  void accept_next();
  void run_on_thread(const std::function<void()>& f);

  std::string listen_path_, target_path_;
  boost::asio::io_context ioc_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::vector<std::weak_ptr<pair>> open_;
  bool cut_ = false;
  std::string fail_part_;  // fail_next's, used on the relay thread
  int fail_left_ = 0;
  std::string hold_part_;  // hold_answer's, used on the relay thread
  bool holding_ = false;
  std::atomic<std::size_t> relayed_{0};
  std::thread thread_;
};

// The Docker daemon's socket as the docker CLI would find it: DOCKER_HOST's unix:// path, else
// /var/run/docker.sock.
std::string docker_socket_path();

}  // namespace wakegate::test
