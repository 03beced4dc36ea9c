// proxy::server's lifetime: what its worker threads' contexts own is destroyed safely. The bug
// this guards against is a use of freed memory: the sanitizer build (scripts/sanitize.sh)
// reports it; the checks below also hold without it.
#include <fcntl.h>

#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>

#include "common/shard.hpp"
#include "proxy/server.hpp"

using namespace wakegate;
using boost::asio::ip::tcp;

namespace {
bool descriptor_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }
}  // namespace

// As at a shutdown where a worker was too slow to run what the control thread posted it last (the
// clear of its idle connections to an instance): the instance, with an idle connection of each
// worker, is kept only by handlers still queued to the workers. Whichever worker's context goes
// last drops it, and its connections of the other worker must not outlive that one's context
// (found in CI under ASan: a heap-use-after-free in the socket's close at exit).
TEST_CASE("server: an instance kept by handlers left queued to each worker is destroyed before any worker's context",
          "[proxy][server]") {
  const auto saved_shards = shard_count;
  shard_count = 3;  // two workers and the control thread
  config::config cfg;
  auto srv = std::make_unique<proxy::server>(cfg);
  auto executors = srv->executors();
  REQUIRE(executors.size() == 2);

  auto inst = std::make_shared<scaler::instance>("a-1", "a");
  std::vector<int> fds;
  for (std::size_t k = 0; k < executors.size(); ++k) {
    tcp::socket s(executors[k]);
    s.open(tcp::v4());
    fds.push_back(s.native_handle());
    inst->pools[k].push_back({std::move(s), 0});
  }
  for (auto& ex : executors) boost::asio::post(ex, [inst] {});  // never run: the server never started
  std::weak_ptr<scaler::instance> watch = inst;
  inst.reset();
  REQUIRE_FALSE(watch.expired());

  srv.reset();
  shard_count = saved_shards;
  CHECK(watch.expired());
  for (int fd : fds) CHECK_FALSE(descriptor_open(fd));  // each idle connection was closed
}
