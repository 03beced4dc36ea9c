#include "scaler/backends/docker_api.hpp"

#include <algorithm>
#include <charconv>
#include <initializer_list>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>

namespace wakegate::scaler::docker {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

namespace {

constexpr auto tok = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t max_body = 64 * 1024 * 1024;  // a pull's progress stream can be long

std::string shorten(std::string_view text, std::size_t max = 300) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  if (text.size() <= max) return std::string(text);
  return std::string(text.substr(0, max)) + "...";
}

const json::value* find_path(const json::value& root, std::initializer_list<std::string_view> path) {
  const json::value* v = &root;
  for (auto key : path) {
    const auto* o = v->if_object();
    if (o == nullptr) return nullptr;
    v = o->if_contains(key);
    if (v == nullptr) return nullptr;
  }
  return v;
}

std::string string_at(const json::value& root, std::initializer_list<std::string_view> path) {
  const auto* v = find_path(root, path);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::optional<json::value> parse_json(std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec) return std::nullopt;
  return v;
}

std::string transport_error(std::string_view step, const boost::system::error_code& ec) {
  if (ec == beast::error::timeout) return std::string(step) + ": timed out";
  return std::string(step) + ": " + ec.message();
}

}  // namespace

std::string container_name(std::string_view instance_id) { return "wakegate-" + std::string(instance_id); }

socket_address socket_from_docker_host(const char* docker_host) {
  socket_address out;
  const std::string_view host = docker_host != nullptr ? docker_host : "";
  if (host.empty()) {
    out.path = "/var/run/docker.sock";
  } else if (host.starts_with("unix://") && host.size() > 7) {
    out.path = std::string(host.substr(7));
  } else {
    out.error = "DOCKER_HOST '" + std::string(host) + "' is not supported (only unix:///path/to/docker.sock)";
  }
  return out;
}

int compare_versions(std::string_view a, std::string_view b) {
  auto next = [](std::string_view& v) {
    int n = 0;
    const auto dot = v.find('.');
    const auto part = v.substr(0, dot);
    std::from_chars(part.data(), part.data() + part.size(), n);
    v = dot == std::string_view::npos ? std::string_view() : v.substr(dot + 1);
    return n;
  };
  while (!a.empty() || !b.empty()) {
    const int x = next(a), y = next(b);
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

std::optional<std::string> negotiate_version(std::string_view server_api_version) {
  if (server_api_version.empty() || compare_versions(server_api_version, min_api_version) < 0) return std::nullopt;
  return std::string(compare_versions(server_api_version, client_api_version) < 0 ? server_api_version
                                                                                  : client_api_version);
}

std::string url_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string create_body(const config::docker_backend& cfg, std::string_view app, std::string_view instance_id,
                        std::string_view run_id) {
  json::object body;
  body["Image"] = cfg.image;
  if (!cfg.command.empty()) {
    json::array cmd;
    for (const auto& arg : cfg.command) cmd.emplace_back(arg);
    body["Cmd"] = std::move(cmd);
  }
  json::array env;
  const bool port_set = std::any_of(cfg.env.begin(), cfg.env.end(), [](const auto& kv) { return kv.first == "PORT"; });
  if (!port_set) env.emplace_back("PORT=" + std::to_string(cfg.port));
  for (const auto& [name, value] : cfg.env) env.emplace_back(name + "=" + value);
  body["Env"] = std::move(env);
  json::object labels;
  for (const auto& [name, value] : cfg.labels) labels[name] = value;
  labels[app_label] = app;
  labels[instance_label] = instance_id;
  if (!run_id.empty()) labels[run_label] = run_id;
  body["Labels"] = std::move(labels);
  const std::string port_key = std::to_string(cfg.port) + "/tcp";
  json::object exposed;
  exposed[port_key] = json::object();
  body["ExposedPorts"] = std::move(exposed);
  json::object host;
  if (cfg.network.empty()) {
    // An ephemeral host port on loopback only: the daemon picks it, so it cannot collide.
    json::object binding;
    binding["HostIp"] = "127.0.0.1";
    binding["HostPort"] = "";
    json::object bindings;
    bindings[port_key] = json::array{binding};
    host["PortBindings"] = std::move(bindings);
  } else {
    host["NetworkMode"] = cfg.network;
  }
  if (cfg.memory > 0) host["Memory"] = cfg.memory;
  if (cfg.nano_cpus > 0) host["NanoCpus"] = cfg.nano_cpus;
  body["HostConfig"] = std::move(host);
  return json::serialize(body);
}

image_ref split_image(std::string_view image) {
  image_ref ref;
  if (image.find('@') != std::string_view::npos) {
    ref.from_image = image;
    return ref;
  }
  // A ':' after the last '/' is a tag; one before it belongs to a registry host:port.
  const auto slash = image.rfind('/');
  const auto colon = image.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    ref.from_image = image.substr(0, colon);
    ref.tag = image.substr(colon + 1);
  } else {
    ref.from_image = image;
    ref.tag = "latest";
  }
  return ref;
}

std::string demux_logs(std::string_view body) {
  std::string out;
  std::size_t at = 0;
  while (at + 8 <= body.size()) {
    const auto* h = reinterpret_cast<const unsigned char*>(body.data() + at);
    if (h[0] > 2 || h[1] != 0 || h[2] != 0 || h[3] != 0) return std::string(body);  // not framed
    const std::size_t n = (std::size_t{h[4]} << 24) | (std::size_t{h[5]} << 16) | (std::size_t{h[6]} << 8) | h[7];
    at += 8;
    out.append(body.substr(at, std::min(n, body.size() - at)));
    at += n;
  }
  return at == 0 ? std::string(body) : out;  // no frame: not framed (a TTY container's log)
}

std::string error_message(std::string_view body) {
  if (auto v = parse_json(body)) {
    auto m = string_at(*v, {"message"});
    if (!m.empty()) return shorten(m);
  }
  return body.empty() ? std::string("(no message)") : shorten(body);
}

std::string pull_error(std::string_view body) {
  while (!body.empty()) {
    const auto nl = body.find('\n');
    const auto line = body.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    if (line.find("\"error\"") == std::string_view::npos) continue;
    if (auto v = parse_json(line)) {
      auto e = string_at(*v, {"error"});
      if (!e.empty()) return shorten(e);
    }
  }
  return {};
}

inspect_result parse_inspect(std::string_view body, std::uint16_t container_port, std::string_view network) {
  inspect_result r;
  auto v = parse_json(body);
  if (!v || !v->is_object()) {
    r.problem = "unreadable inspect response";
    return r;
  }
  r.parsed = true;
  if (const auto* running = find_path(*v, {"State", "Running"}); running != nullptr && running->is_bool())
    r.running = running->get_bool();
  if (const auto* code = find_path(*v, {"State", "ExitCode"}); code != nullptr && code->is_int64())
    r.exit_code = static_cast<int>(code->get_int64());
  r.state_error = string_at(*v, {"State", "Error"});
  if (!network.empty()) {
    const auto* networks = find_path(*v, {"NetworkSettings", "Networks"});
    const auto* n = networks != nullptr && networks->is_object() ? networks->get_object().if_contains(network) : nullptr;
    std::string ip = n != nullptr ? string_at(*n, {"IPAddress"}) : std::string();
    if (ip.empty()) {
      r.problem = "the container has no address on network '" + std::string(network) + "'";
    } else {
      r.host = std::move(ip);
      r.port = container_port;
    }
    return r;
  }
  const std::string key = std::to_string(container_port) + "/tcp";
  const auto* ports = find_path(*v, {"NetworkSettings", "Ports"});
  const auto* bindings = ports != nullptr && ports->is_object() ? ports->get_object().if_contains(key) : nullptr;
  if (bindings != nullptr && bindings->is_array()) {
    for (const auto& b : bindings->get_array()) {
      const std::string host_ip = string_at(b, {"HostIp"});
      const std::string host_port = string_at(b, {"HostPort"});
      int port = 0;
      std::from_chars(host_port.data(), host_port.data() + host_port.size(), port);
      if (port <= 0 || port > 65535) continue;
      if (!host_ip.empty() && host_ip != "127.0.0.1" && host_ip != "0.0.0.0") continue;
      r.host = "127.0.0.1";
      r.port = static_cast<std::uint16_t>(port);
      return r;
    }
  }
  r.problem = "port " + key + " is not published on 127.0.0.1";
  return r;
}

std::string parse_created_id(std::string_view body) {
  auto v = parse_json(body);
  return v ? string_at(*v, {"Id"}) : std::string();
}

std::vector<listed_container> parse_container_list(std::string_view body) {
  std::vector<listed_container> out;
  auto v = parse_json(body);
  if (!v || !v->is_array()) return out;
  for (const auto& c : v->get_array()) {
    auto id = string_at(c, {"Id"});
    if (!id.empty())
      out.push_back({std::move(id), string_at(c, {"Labels", instance_label}), string_at(c, {"Labels", run_label})});
  }
  return out;
}

std::optional<event> parse_event(std::string_view line) {
  auto v = parse_json(line);
  if (!v || !v->is_object()) return std::nullopt;
  event e;
  e.type = string_at(*v, {"Type"});
  e.action = string_at(*v, {"Action"});
  e.id = string_at(*v, {"Actor", "ID"});
  if (e.id.empty()) e.id = string_at(*v, {"id"});
  e.instance = string_at(*v, {"Actor", "Attributes", instance_label});
  e.exit_code = string_at(*v, {"Actor", "Attributes", "exitCode"});
  return e;
}

std::vector<event> event_splitter::feed(std::string_view bytes) {
  std::vector<event> out;
  pending_.append(bytes);
  std::size_t begin = 0;
  for (auto nl = pending_.find('\n'); nl != std::string::npos; nl = pending_.find('\n', begin)) {
    auto line = std::string_view(pending_).substr(begin, nl - begin);
    begin = nl + 1;
    if (auto e = parse_event(line)) out.push_back(std::move(*e));
  }
  pending_.erase(0, begin);
  if (pending_.size() > 1024 * 1024) pending_.clear();  // no newline in a megabyte: not the event stream
  return out;
}

// ---- the client -------------------------------------------------------------------------------

api_client::api_client(asio::any_io_executor ex, std::string socket_path)
    : ex_(std::move(ex)), socket_path_(std::move(socket_path)) {}

std::string unreachable(const std::string& socket_path, const std::string& error) {
  return "cannot reach the Docker daemon at " + socket_path + " (" + error + ")";
}

asio::awaitable<std::string> api_client::negotiate(std::chrono::milliseconds timeout) {
  const std::string target = "/version";
  const std::string no_body;
  auto r = co_await request(http::verb::get, target, no_body, timeout, false);
  if (!r.error.empty()) co_return unreachable(socket_path_, r.error);
  if (!r.ok()) co_return "Docker daemon at " + socket_path_ + ": GET /version: status " + std::to_string(r.status) +
                         ": " + error_message(r.body);
  std::string server;
  if (auto v = parse_json(r.body)) server = string_at(*v, {"ApiVersion"});
  auto version = negotiate_version(server);
  if (!version)
    co_return "the Docker daemon at " + socket_path_ + " speaks API " + (server.empty() ? "(unknown)" : server) +
        ", wakegate needs at least " + std::string(min_api_version);
  version_ = std::move(*version);
  co_return std::string();
}

asio::awaitable<api_response> api_client::request(http::verb verb, std::string target, std::string body,
                                                  std::chrono::milliseconds timeout, bool versioned) {
  api_response out;
  if (versioned && version_.empty()) {
    // Forgotten (the event stream was lost: the daemon may have been replaced) and not yet
    // negotiated again: "/v/containers/..." would be a 404, which reads as "no such container"
    // (found by a test: a removal during the event stream's backoff took the 404 as done, and
    // left the container running).
    if (auto err = co_await negotiate(timeout); !err.empty()) {
      out.error = std::move(err);
      co_return out;
    }
  }
  // The path is made before the first suspension: forget() may clear version_ while this call
  // connects (found by a test in CI: the event stream's reconnect failed meanwhile, and an
  // inspect went to "/v/containers/..." and read the daemon's 404 as "no such container").
  std::string path = versioned ? "/v" + version_ + target : std::move(target);
  local_stream stream(ex_);
  stream.expires_after(timeout);
  const asio::local::stream_protocol::endpoint endpoint(socket_path_);
  auto [cec] = co_await stream.async_connect(endpoint, tok);
  if (cec) {
    out.error = transport_error("connect", cec);
    co_return out;
  }
  http::request<http::string_body> req{verb, path, 11};
  req.set(http::field::host, "docker");
  req.set(http::field::user_agent, "wakegate");
  req.keep_alive(false);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = std::move(body);
  req.prepare_payload();
  auto [wec, wn] = co_await http::async_write(stream, req, tok);
  if (wec) {
    out.error = transport_error("write", wec);
    co_return out;
  }
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_body);
  auto [rec, rn] = co_await http::async_read(stream, buf, parser, tok);
  if (rec) {
    out.error = transport_error("read", rec);
    co_return out;
  }
  out.status = static_cast<int>(parser.get().result_int());
  out.body = std::move(parser.get().body());
  beast::error_code ignored;
  stream.socket().shutdown(asio::local::stream_protocol::socket::shutdown_both, ignored);
  co_return out;
}

asio::awaitable<std::string> api_client::stream(std::shared_ptr<local_stream> s, std::string target,
                                                std::function<void()> on_open,
                                                std::function<void(std::string_view)> on_bytes,
                                                std::chrono::milliseconds connect_timeout) {
  const std::string path = "/v" + version_ + target;  // before connecting, as in request()
  s->expires_after(connect_timeout);
  const asio::local::stream_protocol::endpoint endpoint(socket_path_);
  auto [cec] = co_await s->async_connect(endpoint, tok);
  if (cec) co_return unreachable(socket_path_, transport_error("connect", cec));
  http::request<http::empty_body> req{http::verb::get, path, 11};
  req.set(http::field::host, "docker");
  req.set(http::field::user_agent, "wakegate");
  auto [wec, wn] = co_await http::async_write(*s, req, tok);
  if (wec) co_return unreachable(socket_path_, transport_error("write", wec));
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  auto [hec, hn] = co_await http::async_read_header(*s, buf, parser, tok);
  if (hec) co_return unreachable(socket_path_, transport_error("read", hec));
  if (parser.get().result_int() != 200)
    co_return "GET " + target.substr(0, target.find('?')) + ": status " + std::to_string(parser.get().result_int());
  s->expires_never();  // an event stream may stay quiet for hours
  on_open();
  char chunk[8192];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    // read_some: returns with what one read brought, not only once the buffer is full.
    auto [ec, n] = co_await http::async_read_some(*s, buf, parser, tok);
    if (ec == http::error::need_buffer) ec = {};
    const std::size_t got = sizeof chunk - parser.get().body().size;
    if (got > 0) on_bytes(std::string_view(chunk, got));
    if (ec) co_return ec == asio::error::operation_aborted ? std::string("closed") : transport_error("read", ec);
  }
  co_return std::string("the daemon ended the event stream");
}

}  // namespace wakegate::scaler::docker
