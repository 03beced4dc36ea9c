// A small Docker Engine API client: HTTP/1.1 with Beast over the daemon's Unix socket, one
// connection per request (the event stream keeps its own), every call async on the caller's
// io_context. The pure functions below (request bodies, response parsing) are what the unit
// tests cover; docker_backend.cpp strings them together.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/http/verb.hpp>

#include "config/config.hpp"

namespace wakegate::scaler::docker {

// The Engine API version this code is written against (Docker 20.10). A newer daemon is spoken
// to in this version; an older one in its own, as Docker's version negotiation describes.
inline constexpr std::string_view client_api_version = "1.41";
// Oldest daemon API wakegate accepts (NanoCpus, label filters on /events and the 1.25 error body).
inline constexpr std::string_view min_api_version = "1.25";

// Labels every container of wakegate carries; `wakegate.instance` is the instance id.
inline constexpr std::string_view app_label = "wakegate.app";
inline constexpr std::string_view instance_label = "wakegate.instance";
inline constexpr std::string_view run_label = "wakegate.run";  // which wakegate process made it

// "wakegate-" + instance id: unique per app and instance, readable in `docker ps`.
std::string container_name(std::string_view instance_id);

// DOCKER_HOST (may be null or empty) -> the socket path; `error` set for non-unix hosts.
struct socket_address {
  std::string path;
  std::string error;
};
socket_address socket_from_docker_host(const char* docker_host);

// Compares "1.41"-style versions: <0, 0, >0. Unparsable parts count as 0.
int compare_versions(std::string_view a, std::string_view b);
// min(server, client_api_version); nullopt when the server is older than min_api_version.
std::optional<std::string> negotiate_version(std::string_view server_api_version);

// Percent-encodes for a query string value.
std::string url_encode(std::string_view text);

// The body of POST /containers/create for one instance.
std::string create_body(const config::docker_backend& cfg, std::string_view app, std::string_view instance_id,
                        std::string_view run_id = {});

// "repo:tag" -> (fromImage, tag) for POST /images/create; a digest or no tag keeps fromImage whole.
struct image_ref {
  std::string from_image;
  std::string tag;
};
image_ref split_image(std::string_view image);

// Docker's error body {"message": "..."}; the raw body (shortened) when it is not that.
std::string error_message(std::string_view body);

// The JSON-lines progress stream of /images/create: the first {"error": ...}, or "".
std::string pull_error(std::string_view body);

// GET /containers/{id}/logs of a container without a TTY: Docker's multiplexed stream (frames of
// an 8-byte header: stream, 3 zero bytes, size big-endian; then the bytes) as plain text, stdout
// and stderr interleaved as written. A body that is not framed so is returned as it is.
std::string demux_logs(std::string_view body);

// GET /containers/{id}/json, reduced to what starting an instance needs.
struct inspect_result {
  bool parsed = false;
  bool running = false;
  int exit_code = 0;
  std::string state_error;  // State.Error (e.g. why it could not start)
  std::string host;         // where wakegate reaches the app
  std::uint16_t port = 0;
  std::string problem;      // why host/port could not be found
};
// `container_port` is the app's port; with `network`, the address on that network is used.
inspect_result parse_inspect(std::string_view body, std::uint16_t container_port, std::string_view network);

// POST /containers/create: the new container's id ("" if the body has none).
std::string parse_created_id(std::string_view body);

// GET /containers/json: each container's id and its wakegate.instance and wakegate.run labels
// ("" if none).
struct listed_container {
  std::string id;
  std::string instance;
  std::string run;
  bool operator==(const listed_container&) const = default;
};
std::vector<listed_container> parse_container_list(std::string_view body);

// One event of GET /events, reduced.
struct event {
  std::string type;       // "container"
  std::string action;     // "die", "start", ...
  std::string id;         // container id
  std::string instance;   // the wakegate.instance label ("" if none)
  std::string exit_code;  // Actor.Attributes.exitCode ("" if none)
};
// Splits the event stream (one JSON object per line, arriving in arbitrary pieces) into events.
class event_splitter {
 public:
  // Appends bytes; returns the events completed by them (lines that are not JSON are skipped).
  std::vector<event> feed(std::string_view bytes);

 private:
  std::string pending_;
};
std::optional<event> parse_event(std::string_view line);

// ---- the client -------------------------------------------------------------------------------

struct api_response {
  std::string error;  // transport failure ("connect: ...", "read: ..."); then status is 0
  int status = 0;
  std::string body;
  bool ok() const { return error.empty() && status >= 200 && status < 300; }
};

using local_stream = boost::beast::basic_stream<boost::asio::local::stream_protocol>;

class api_client {
 public:
  api_client(boost::asio::any_io_executor ex, std::string socket_path);

  const std::string& socket_path() const noexcept { return socket_path_; }
  // "" until negotiate() succeeded; forget() makes the next versioned call negotiate again
  // (request() does so itself when the version is unknown).
  const std::string& version() const noexcept { return version_; }
  void forget() { version_.clear(); }

  // GET /version and pick the API version. "" on success, else a readable reason.
  boost::asio::awaitable<std::string> negotiate(std::chrono::milliseconds timeout);

  // One request on a new connection, to `/v<version><target>` (`target` as is when not
  // `versioned`), with one deadline for the whole exchange. Never throws.
  boost::asio::awaitable<api_response> request(boost::beast::http::verb verb, std::string target,
                                               std::string body, std::chrono::milliseconds timeout,
                                               bool versioned = true);

  // GET `target` (versioned) on `stream` and hand the body to `on_bytes` as it arrives, until
  // the daemon ends it or it fails (close `stream` to end it from outside). `on_open` runs once
  // the 200 header is in. Returns why it ended.
  boost::asio::awaitable<std::string> stream(std::shared_ptr<local_stream> stream, std::string target,
                                             std::function<void()> on_open,
                                             std::function<void(std::string_view)> on_bytes,
                                             std::chrono::milliseconds connect_timeout);

 private:
  boost::asio::any_io_executor ex_;
  std::string socket_path_;
  std::string version_;
};

// A readable reason for a transport failure, naming the socket.
std::string unreachable(const std::string& socket_path, const std::string& error);

}  // namespace wakegate::scaler::docker
