// The Docker Engine API client's pure parts: version negotiation, request bodies, response and
// event-stream parsing. (The calls themselves run against the real daemon in
// tests/integration/docker_test.cpp; one interleaving runs against a stand-in, at the end.)
#include "scaler/backends/docker_api.hpp"

#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <optional>

using namespace wakegate;
using namespace wakegate::scaler::docker;
namespace json = boost::json;

TEST_CASE("API version negotiation takes the older of server and client", "[scaler][docker]") {
  CHECK(compare_versions("1.41", "1.41") == 0);
  CHECK(compare_versions("1.9", "1.41") < 0);  // numeric, not text
  CHECK(compare_versions("1.43", "1.41") > 0);
  CHECK(compare_versions("2.0", "1.99") > 0);
  CHECK(compare_versions("1.41", "1.41.0") == 0);

  CHECK(negotiate_version("1.41") == "1.41");
  CHECK(negotiate_version("1.45") == "1.41");  // newer daemon: we speak ours
  CHECK(negotiate_version("1.30") == "1.30");  // older daemon: we speak its
  CHECK(negotiate_version("1.25") == "1.25");
  CHECK_FALSE(negotiate_version("1.24"));  // too old
  CHECK_FALSE(negotiate_version(""));
}

TEST_CASE("DOCKER_HOST selects the socket, only unix:// is accepted", "[scaler][docker]") {
  CHECK(socket_from_docker_host(nullptr).path == "/var/run/docker.sock");
  CHECK(socket_from_docker_host("").path == "/var/run/docker.sock");
  auto custom = socket_from_docker_host("unix:///tmp/x/docker.sock");
  CHECK(custom.path == "/tmp/x/docker.sock");
  CHECK(custom.error.empty());
  auto tcp = socket_from_docker_host("tcp://127.0.0.1:2375");
  CHECK(tcp.path.empty());
  CHECK(tcp.error == "DOCKER_HOST 'tcp://127.0.0.1:2375' is not supported (only unix:///path/to/docker.sock)");
  CHECK_FALSE(socket_from_docker_host("unix://").error.empty());
}

TEST_CASE("names and query strings", "[scaler][docker]") {
  CHECK(container_name("hello-3") == "wakegate-hello-3");
  CHECK(url_encode(R"({"label":["wakegate.app=a b"]})") == "%7B%22label%22%3A%5B%22wakegate.app%3Da%20b%22%5D%7D");
  CHECK(url_encode("abc-._~XYZ019") == "abc-._~XYZ019");
}

TEST_CASE("create body: image, command, env with PORT, labels, loopback port binding, limits", "[scaler][docker]") {
  config::docker_backend cfg;
  cfg.image = "wakegate-test/httpd:1";
  cfg.port = 8080;
  cfg.command = {"/bin/httpd", "-f"};
  cfg.env = {{"GREETING", "hi"}, {"EMPTY", ""}};
  cfg.labels = {{"team", "web"}};
  cfg.memory = 64 * 1024 * 1024;
  cfg.nano_cpus = 500'000'000;
  auto body = json::parse(create_body(cfg, "hello", "hello-3", "run-7")).as_object();

  CHECK(body.at("Image").as_string() == "wakegate-test/httpd:1");
  CHECK(body.at("Cmd").as_array() == json::array{"/bin/httpd", "-f"});
  CHECK(body.at("Env").as_array() == json::array{"PORT=8080", "GREETING=hi", "EMPTY="});
  const auto& labels = body.at("Labels").as_object();
  CHECK(labels.at("wakegate.app").as_string() == "hello");
  CHECK(labels.at("wakegate.instance").as_string() == "hello-3");
  CHECK(labels.at("team").as_string() == "web");
  CHECK(labels.at("wakegate.run").as_string() == "run-7");
  CHECK(body.at("ExposedPorts").as_object().contains("8080/tcp"));
  const auto& host = body.at("HostConfig").as_object();
  const auto& binding = host.at("PortBindings").at("8080/tcp").as_array().at(0).as_object();
  CHECK(binding.at("HostIp").as_string() == "127.0.0.1");
  CHECK(binding.at("HostPort").as_string() == "");  // ephemeral
  CHECK(host.at("Memory").as_int64() == 64 * 1024 * 1024);
  CHECK(host.at("NanoCpus").as_int64() == 500'000'000);
  CHECK_FALSE(host.contains("NetworkMode"));
}

TEST_CASE("create body: no command keeps the image's, PORT from env wins, a network replaces the binding",
          "[scaler][docker]") {
  config::docker_backend cfg;
  cfg.image = "app";
  cfg.port = 3000;
  cfg.env = {{"PORT", "3000"}};
  cfg.network = "backend-net";
  auto body = json::parse(create_body(cfg, "a", "a-1")).as_object();
  CHECK_FALSE(body.contains("Cmd"));
  CHECK(body.at("Env").as_array() == json::array{"PORT=3000"});
  const auto& host = body.at("HostConfig").as_object();
  CHECK(host.at("NetworkMode").as_string() == "backend-net");
  CHECK_FALSE(host.contains("PortBindings"));
  CHECK_FALSE(host.contains("Memory"));
  CHECK_FALSE(host.contains("NanoCpus"));
}

TEST_CASE("image references split into fromImage and tag for a pull", "[scaler][docker]") {
  auto check = [](std::string_view image, std::string from, std::string tag) {
    auto ref = split_image(image);
    INFO(image);
    CHECK(ref.from_image == from);
    CHECK(ref.tag == tag);
  };
  check("nginx", "nginx", "latest");
  check("nginx:1.25", "nginx", "1.25");
  check("registry.example.com:5000/team/app", "registry.example.com:5000/team/app", "latest");
  check("registry.example.com:5000/team/app:v2", "registry.example.com:5000/team/app", "v2");
  check("app@sha256:abcd", "app@sha256:abcd", "");
}

TEST_CASE("error bodies and pull progress streams", "[scaler][docker]") {
  CHECK(error_message(R"({"message":"No such image: x:1"})") == "No such image: x:1");
  CHECK(error_message("page not found\n") == "page not found");
  CHECK(error_message("") == "(no message)");
  CHECK(error_message(std::string(1000, 'x')).size() == 303);

  CHECK(pull_error("{\"status\":\"Pulling from library/x\"}\n{\"status\":\"Downloading\"}\n").empty());
  CHECK(pull_error("{\"status\":\"Pulling\"}\n{\"errorDetail\":{\"message\":\"denied\"},\"error\":\"pull access denied\"}\n") ==
        "pull access denied");
}

TEST_CASE("inspect: running state, exit code and the published loopback port", "[scaler][docker]") {
  const std::string running = R"({
    "Id": "abc", "State": {"Running": true, "ExitCode": 0, "Error": ""},
    "NetworkSettings": {
      "Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}], "9090/tcp": null},
      "Networks": {"bridge": {"IPAddress": "172.17.0.2"}, "backend-net": {"IPAddress": "172.20.0.5"}}}})";
  auto r = parse_inspect(running, 8080, {});
  CHECK(r.parsed);
  CHECK(r.running);
  CHECK(r.host == "127.0.0.1");
  CHECK(r.port == 49153);
  CHECK(r.problem.empty());

  auto unpublished = parse_inspect(running, 9090, {});
  CHECK(unpublished.port == 0);
  CHECK(unpublished.problem == "port 9090/tcp is not published on 127.0.0.1");

  auto on_network = parse_inspect(running, 8080, "backend-net");
  CHECK(on_network.host == "172.20.0.5");
  CHECK(on_network.port == 8080);
  auto other_network = parse_inspect(running, 8080, "nope");
  CHECK(other_network.problem == "the container has no address on network 'nope'");

  auto exited = parse_inspect(R"({"State": {"Running": false, "ExitCode": 3, "Error": "boom"}})", 8080, {});
  CHECK(exited.parsed);
  CHECK_FALSE(exited.running);
  CHECK(exited.exit_code == 3);
  CHECK(exited.state_error == "boom");

  CHECK_FALSE(parse_inspect("not json", 8080, {}).parsed);
}

TEST_CASE("container logs: the multiplexed stream is joined, other text kept as it is", "[scaler][docker]") {
  using namespace std::string_literals;
  const std::string framed = "\x01\0\0\0\0\0\0\x03"s + "out" + "\x02\0\0\0\0\0\0\x04"s + "err\n";
  CHECK(demux_logs(framed) == "outerr\n");
  CHECK(demux_logs("plain text\n") == "plain text\n");  // a TTY container's log is not framed
  CHECK(demux_logs("") == "");
  CHECK(demux_logs("\x01\0\0\0\0\0\0\x09"s + "cut") == "cut");  // a frame cut short: what there is
}

TEST_CASE("container lists and create answers", "[scaler][docker]") {
  CHECK(parse_container_list(
            R"([{"Id":"a1","Names":["/x"],"Labels":{"wakegate.instance":"web-3","wakegate.run":"r1","x":"y"}},{"Id":"b2"}])") ==
        std::vector<listed_container>{{"a1", "web-3", "r1"}, {"b2", "", ""}});
  CHECK(parse_container_list("[]").empty());
  CHECK(parse_container_list("{}").empty());
  CHECK(parse_created_id(R"({"Id":"f00d","Warnings":[]})") == "f00d");
  CHECK(parse_created_id("garbage").empty());
}

TEST_CASE("the event stream is split into events however its bytes arrive", "[scaler][docker]") {
  const std::string die =
      R"({"status":"die","id":"c1","Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":)"
      R"({"exitCode":"137","wakegate.app":"a","wakegate.instance":"a-2","name":"wakegate-a-2"}},"time":1})"
      "\n";
  const std::string start = R"({"Type":"container","Action":"start","Actor":{"ID":"c2","Attributes":{}}})"
                            "\n";
  const std::string stream = die + "garbage line\n" + start;

  for (std::size_t piece : {std::size_t{1}, std::size_t{7}, stream.size()}) {
    event_splitter splitter;
    std::vector<event> events;
    for (std::size_t at = 0; at < stream.size(); at += piece) {
      for (auto& e : splitter.feed(std::string_view(stream).substr(at, piece))) events.push_back(e);
    }
    INFO("pieces of " << piece);
    REQUIRE(events.size() == 2);
    CHECK(events[0].type == "container");
    CHECK(events[0].action == "die");
    CHECK(events[0].id == "c1");
    CHECK(events[0].instance == "a-2");
    CHECK(events[0].exit_code == "137");
    CHECK(events[1].action == "start");
    CHECK(events[1].instance.empty());
  }
  event_splitter partial;
  CHECK(partial.feed(die.substr(0, 20)).empty());  // no newline yet
  CHECK(partial.feed(die.substr(20)).size() == 1);
}

// ---- the client against a stand-in daemon ---------------------------------------------------
// The real daemon runs in the integration tests; this stand-in is for one interleaving they
// cannot order: the version forgotten (the event stream lost) while a call is connecting.

namespace {
namespace asio = boost::asio;
namespace http = boost::beast::http;

// Answers each request on a unix socket: /version with API 1.41, anything else 200 "{}", and
// records the paths it was asked for.
struct stand_in_daemon {
  asio::io_context& ctx;
  std::string path;
  asio::local::stream_protocol::acceptor acceptor;
  std::vector<std::string> targets;

  stand_in_daemon(asio::io_context& c, std::string p)
      : ctx(c), path(std::move(p)), acceptor(c, asio::local::stream_protocol::endpoint((::unlink(path.c_str()), path))) {
    asio::co_spawn(ctx, serve(), asio::detached);
  }
  ~stand_in_daemon() { ::unlink(path.c_str()); }

  asio::awaitable<void> serve() {
    for (;;) {
      auto [ec, sock] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      boost::beast::flat_buffer buf;
      http::request<http::string_body> req;
      auto [rec, rn] = co_await http::async_read(sock, buf, req, asio::as_tuple(asio::use_awaitable));
      if (rec) continue;
      targets.emplace_back(req.target());
      http::response<http::string_body> res{http::status::ok, 11};
      res.body() = req.target() == "/version" ? R"({"ApiVersion":"1.41"})" : "{}";
      res.keep_alive(false);
      res.prepare_payload();
      co_await http::async_write(sock, res, asio::as_tuple(asio::use_awaitable));
    }
  }
};
}  // namespace

TEST_CASE("a call keeps the API version it started with when the version is forgotten meanwhile", "[scaler][docker]") {
  asio::io_context ctx;
  const std::string socket = "/tmp/wakegate-unit-docker-" + std::to_string(::getpid()) + ".sock";
  stand_in_daemon daemon(ctx, socket);
  api_client client(ctx.get_executor(), socket);
  std::optional<api_response> answer;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        const std::string negotiated = co_await client.negotiate(std::chrono::seconds(5));
        REQUIRE(negotiated.empty());
        REQUIRE(client.version() == "1.41");
        // The call starts and suspends in its connect; the forget runs before it resumes.
        asio::post(ctx, [&] { client.forget(); });
        answer = co_await client.request(http::verb::get, "/containers/abc/json", "", std::chrono::seconds(5));
        daemon.acceptor.close();
      },
      asio::detached);
  ctx.run_for(std::chrono::seconds(10));
  REQUIRE(answer.has_value());
  INFO("error: " << answer->error);
  CHECK(answer->ok());
  CHECK(client.version().empty());  // forgotten: the next call negotiates again
  // Before the fix: "/v/containers/abc/json", which the daemon answers 404 "page not found".
  CHECK(daemon.targets == std::vector<std::string>{"/version", "/v1.41/containers/abc/json"});
}
