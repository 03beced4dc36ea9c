// The https listener with certificate files: SNI, safe defaults, requests through a cold start,
// resumption, redirect from http, and certificate reload with a connection kept open.
#include <csignal>
#include <fstream>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>

#include "tests/support/integration.hpp"
#include "tests/support/tls.hpp"

using namespace wakegate::test;

namespace {

// Two certificates (a.test, *.b.test) from one test CA, and wakegate serving them on https.
struct https_setup {
  temp_dir certs;
  cert_files ca = make_test_ca(certs.path());
  cert_files a = make_test_cert(certs.path(), "a", {"a.test"}, ca);
  cert_files b = make_test_cert(certs.path(), "b", {"*.b.test"}, ca);
  std::string marker = unique_marker();

  config_yaml config(const std::string& default_cert = "a.test", const std::string& extra_tls = "") const {
    config_yaml c;
    c.https = "127.0.0.1:0";
    c.extra.push_back("tls:");
    c.extra.push_back("  certificates:");
    c.extra.push_back("    - { cert: " + yaml_quote(a.cert) + ", key: " + yaml_quote(a.key) + " }");
    c.extra.push_back("    - { cert: " + yaml_quote(b.cert) + ", key: " + yaml_quote(b.key) + " }");
    if (!default_cert.empty()) c.extra.push_back("  default_certificate: " + default_cert);
    if (!extra_tls.empty()) c.extra.push_back(extra_tls);
    c.apps.push_back(app_yaml("a", {"a.test"}, marker).set("hsts", "365d"));
    c.apps.push_back(app_yaml("b", {"*.b.test"}, marker));
    return c;
  }
};

}  // namespace

TEST_CASE("https: SNI picks the certificate by exact name, then wildcard, and the default without SNI",
          "[integration][https]") {
  https_setup s;
  wakegate_process wg(s.config("x.b.test").str(), wakegate_options::cleaning({s.marker}));
  REQUIRE(wg.https_port() != 0);
  CHECK(presented_names(wg.https_port(), "a.test") == "a.test");
  CHECK(presented_names(wg.https_port(), "A.Test") == "a.test");
  CHECK(presented_names(wg.https_port(), "a.test.") == "a.test");  // a trailing dot: the same name
  CHECK(presented_names(wg.https_port(), "one.b.test") == "*.b.test");
  // The wildcard stands for one label only; unknown names and no SNI get the default.
  CHECK(presented_names(wg.https_port(), "two.one.b.test") == "*.b.test");
  CHECK(presented_names(wg.https_port(), "unknown.test") == "*.b.test");
  CHECK(presented_names(wg.https_port(), "") == "*.b.test");
}

TEST_CASE("https: TLS 1.2 and 1.3 only, strong ciphers only, ALPN http/1.1", "[integration][https]") {
  https_setup s;
  wakegate_process wg(s.config().str(), wakegate_options::cleaning({s.marker}));
  auto port = wg.https_port();

  // A whole HTTP/1.0 exchange (-ign_eof): s_client prints everything before the server closes.
  const std::string request = "GET / HTTP/1.0\r\nHost: a.test\r\n\r\n";
  auto t13 = s_client(port, "a.test", {"-tls1_3", "-CAfile", s.ca.cert, "-verify_hostname", "a.test", "-ign_eof"},
                      request);
  INFO(t13.out);
  CHECK(contains(t13.out, "New, TLSv1.3, Cipher is"));
  CHECK(contains(t13.out, "Verification: OK"));
  CHECK(contains(t13.out, "HTTP/1.1 200 OK"));
  auto t12 = s_client(port, "a.test", {"-tls1_2", "-alpn", "h2,http/1.1", "-ign_eof"}, request);
  INFO(t12.out);
  CHECK(contains(t12.out, "New, TLSv1.2, Cipher is ECDHE-ECDSA-AES"));
  CHECK(contains(t12.out, "ALPN protocol: http/1.1"));
  CHECK(contains(t12.out, "HTTP/1.1 200 OK"));

  // Old protocol versions and weak ciphers: no handshake (the client allows them at level 0).
  for (const char* old : {"-tls1", "-tls1_1"}) {
    auto r = s_client(port, "a.test", {old, "-cipher", "DEFAULT@SECLEVEL=0"});
    INFO(old << ": " << r.out << r.err);
    CHECK(r.exit_code != 0);
    CHECK_FALSE(contains(r.out, "BEGIN CERTIFICATE"));
  }
  for (const char* weak : {"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-GCM-SHA256",
                           "ECDHE-ECDSA-NULL-SHA"}) {
    auto r = s_client(port, "a.test", {"-tls1_2", "-cipher", std::string(weak) + "@SECLEVEL=0"});
    INFO(weak << ": " << r.out << r.err);
    CHECK(r.exit_code != 0);
  }
  CHECK(wait_metric(wg.admin_port(), "wakegate_tls_handshakes_total", {{"result", "failed"}}, 6, 5s));
}

TEST_CASE("https: a connection closed before a byte is no failed handshake, one that sends plain HTTP is",
          "[integration][https]") {
  https_setup s;
  wakegate_process wg(s.config().str(), wakegate_options::cleaning({s.marker}));
  for (int i = 0; i < 3; ++i) {  // as a load balancer's TCP check does
    http_connection check(wg.https_port());
    REQUIRE(check.connect().empty());
  }
  REQUIRE(wait_metric(wg.admin_port(), "wakegate_connections_accepted_total", {}, 3, 5s));
  REQUIRE(wait_metric(wg.admin_port(), "wakegate_open_connections", {}, 0, 5s));
  CHECK(scrape_value(wg.admin_port(), "wakegate_tls_handshakes_total", {{"result", "failed"}}) == std::optional<double>(0));

  http_connection plain(wg.https_port());
  REQUIRE(plain.write_raw("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").empty());
  CHECK(plain.wait_peer_close(5s));
  CHECK(wait_metric(wg.admin_port(), "wakegate_tls_handshakes_total", {{"result", "failed"}}, 1, 5s));
}

TEST_CASE("https: a connection silent or stalled in its handshake is closed at header_timeout, and counted as its hit",
          "[integration][https]") {
  https_setup s;
  auto c = s.config();
  c.extra.push_back("limits: { header_timeout: 1s }");  // room for curl's own handshake below
  wakegate_process wg(c.str(), wakegate_options::cleaning({s.marker}));
  // Silent: nothing of TLS is set up for it until it sends (no 80 KB TLS stream per silent
  // connection); the first bytes start the handshake, which must end by the same deadline.
  http_connection silent(wg.https_port());
  REQUIRE(silent.connect().empty());
  http_connection stalled(wg.https_port());
  REQUIRE(stalled.write_raw(std::string("\x16\x03\x01\x02\x00\x01", 6)).empty());  // part of a ClientHello
  CHECK(silent.wait_peer_close(5s));
  CHECK(stalled.wait_peer_close(5s));
  CHECK(wait_metric(wg.admin_port(), "wakegate_tls_handshakes_total", {{"result", "timeout"}}, 2, 5s));
  // header_timeout covers the handshake: its limit counter says so (found by black-box testing:
  // slowloris on the https listener was missing from it).
  CHECK(wait_metric(wg.admin_port(), "wakegate_limit_hits_total", {{"limit", "header_timeout"}}, 2, 5s));
  CHECK(scrape_value(wg.admin_port(), "wakegate_tls_handshakes_total", {{"result", "failed"}}) == std::optional<double>(0));
  // A client that then does it right is served.
  auto r = curl_https(wg.https_port(), "a.test", "/", s.ca.cert);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(starts_with(r.out, "HTTP/1.1 200"));
}

TEST_CASE("https: SIGTERM closes a connection that has not finished its handshake at once", "[integration][https]") {
  https_setup s;
  auto c = s.config();
  c.shutdown_timeout = "60s";
  wakegate_process wg(c.str(), wakegate_options::cleaning({s.marker}));
  http_connection silent(wg.https_port());  // TCP only: no ClientHello (a health check, a scanner)
  REQUIRE(silent.connect().empty());
  REQUIRE(wait_metric(wg.admin_port(), "wakegate_open_connections", {}, 1, 5s));
  wg.signal(SIGTERM);
  CHECK(wg.wait_exit(20s) == std::optional<int>(0));  // not after shutdown_timeout (60 s)
  CHECK(silent.wait_peer_close(5s));
}

TEST_CASE("https: curl --cacert through a cold start, X-Forwarded-Proto https, HSTS, resumption",
          "[integration][https]") {
  https_setup s;
  wakegate_process wg(s.config().str(), wakegate_options::cleaning({s.marker}));
  REQUIRE(count_processes(s.marker) == 0);

  auto r = curl_https(wg.https_port(), "a.test", "/headers", s.ca.cert);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(starts_with(r.out, "HTTP/1.1 200"));
  CHECK(contains(to_lower(r.out), "strict-transport-security: max-age=31536000"));
  CHECK(contains(r.out, "\"x-forwarded-proto\": \"https\""));
  CHECK(count_processes(s.marker) == 1);  // the request woke the app

  // No HSTS for an app without `hsts`; the wildcard certificate verifies for a sub-domain.
  auto b = curl_https(wg.https_port(), "x.b.test", "/", s.ca.cert);
  INFO(b.out << b.err);
  CHECK(b.exit_code == 0);
  CHECK(starts_with(b.out, "HTTP/1.1 200"));
  CHECK_FALSE(contains(to_lower(b.out), "strict-transport-security"));

  // Resumption with a ticket (TLS 1.3) and with a session (TLS 1.2). A whole HTTP/1.0 exchange,
  // so that the client reads the tickets the server sends after the handshake.
  const std::string request = "GET / HTTP/1.0\r\nHost: a.test\r\n\r\n";
  for (const char* version : {"-tls1_3", "-tls1_2"}) {
    std::string sess = wg.dir() + "/session" + version;
    auto first = s_client(wg.https_port(), "a.test", {version, "-ign_eof", "-sess_out", sess}, request);
    INFO(first.out);
    REQUIRE(contains(first.out, "HTTP/1.1 200 OK"));
    auto again = s_client(wg.https_port(), "a.test", {version, "-ign_eof", "-sess_in", sess}, request);
    INFO(again.out);
    CHECK(contains(again.out, "Reused, TLSv1."));
  }
  std::optional<double> resumed = scrape_value(wg.admin_port(), "wakegate_tls_handshakes_total", {{"result", "resumed"}});
  CHECK(resumed.value_or(0) >= 2);
  auto metrics = fetch_metrics(wg.admin_port());
  REQUIRE(metrics);
  CHECK(metric_value(*metrics, "wakegate_certificate_expiry_timestamp_seconds", {{"host", "a.test"}}).value_or(0) >
        static_cast<double>(std::time(nullptr)));
  auto status = fetch_status_json(wg.admin_port());
  REQUIRE(status);
  const auto& served = status->at("tls").at("certificates").as_array();
  REQUIRE(served.size() == 2);
  CHECK(served[0].at("origin").as_string() == s.a.cert);
  CHECK(served[1].at("names").as_array().at(0).as_string() == "*.b.test");
  auto prom = promtool_check_metrics(*metrics);
  INFO(prom.output);
  CHECK(prom.ran);
  CHECK(prom.exit_code == 0);

  // wakegate's own answer for the app carries its HSTS too: the instance dies without answering.
  auto failed = curl_https(wg.https_port(), "a.test", "/exit", s.ca.cert, {"-X", "POST"});
  INFO(failed.out << failed.err);
  CHECK(starts_with(failed.out, "HTTP/1.1 502"));
  CHECK(contains(to_lower(failed.out), "strict-transport-security: max-age=31536000"));
  CHECK(contains(failed.out, "Server: wakegate"));
}

TEST_CASE("https: redirect_http answers plain http for covered hosts with 308", "[integration][https]") {
  https_setup s;
  auto c = s.config("a.test", "  redirect_http: true");
  c.apps.push_back(app_yaml("plain", {"plain.test"}, s.marker));
  wakegate_process wg(c.str(), wakegate_options::cleaning({s.marker}));

  auto r = http_get(wg.http_port(), "A.test:8080", "/some/path?q=1");
  INFO(describe(r));
  CHECK(r.status == 308);
  CHECK(r.header("Location") == "https://a.test:" + std::to_string(wg.https_port()) + "/some/path?q=1");
  auto wild = http_get(wg.http_port(), "x.b.test", "/");
  CHECK(wild.status == 308);
  http_request asterisk;  // OPTIONS * names no resource: to the root
  asterisk.method = "OPTIONS";
  asterisk.target = "*";
  asterisk.host = "a.test";
  auto options = http_send(wg.http_port(), asterisk);
  CHECK(options.status == 308);
  CHECK(options.header("Location") == "https://a.test:" + std::to_string(wg.https_port()) + "/");
  // A trailing dot names the same host (found by black-box testing: "a.test." was served in clear).
  for (std::string dotted : {"a.test.", "A.TEST.:8080"}) {
    auto d = http_get(wg.http_port(), dotted, "/x");
    INFO(dotted << ": " << describe(d));
    CHECK(d.status == 308);
    CHECK(d.header("Location") == "https://a.test:" + std::to_string(wg.https_port()) + "/x");
  }
  // No certificate covers plain.test: proxied as before.
  auto plain = http_get(wg.http_port(), "plain.test", "/");
  CHECK(plain.status == 200);
  CHECK(count_processes(s.marker) == 1);
}

TEST_CASE("https: a changed certificate file is served to new connections, open ones keep working",
          "[integration][https]") {
  https_setup s;
  wakegate_process wg(s.config().str(), wakegate_options::cleaning({s.marker}));
  tls_connection kept(wg.https_port(), "a.test", s.ca.cert);
  REQUIRE(kept.connected());
  std::string body;
  REQUIRE(kept.get("/", body) == 200);
  CHECK(kept.peer_names() == "a.test");

  // New certificate for the same file: a.test and www.a.test.
  make_test_cert(s.certs.path(), "a", {"a.test", "www.a.test"}, s.ca);
  CHECK(wait_until([&] { return presented_names(wg.https_port(), "a.test") == "a.test,www.a.test"; }, 15s, 100ms));
  CHECK(kept.get("/", body) == 200);
  CHECK(wg.wait_for_record(  // every name in the log line, not the first alone
      [](const auto& x) {
        return json_string(x, "msg") == "certificate loaded" && json_string(x, "names") == "a.test, www.a.test";
      },
      5s));
  CHECK(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "certificate file changed"; }, 1s));

  // A broken file: the old certificate stays in service and the log says why.
  temp_dir other;
  make_test_cert(other.path(), "other", {"other.test"}, s.ca);
  std::rename((other.path() + "/other.key").c_str(), s.a.key.c_str());  // key no longer matches
  CHECK(wg.wait_for_record(
      [](const auto& x) {
        return json_string(x, "msg") == "certificate reload failed: keeping the previous certificate" &&
               contains(json_string(x, "error"), "does not match");
      },
      15s));
  CHECK(presented_names(wg.https_port(), "a.test") == "a.test,www.a.test");
  CHECK(kept.get("/", body) == 200);

  // SIGHUP re-reads the files: repaired, with a third name.
  make_test_cert(s.certs.path(), "a", {"a.test", "v3.a.test"}, s.ca);
  wg.signal(SIGHUP);
  CHECK(wait_until([&] { return presented_names(wg.https_port(), "a.test") == "a.test,v3.a.test"; }, 15s, 100ms));
  CHECK(kept.get("/", body) == 200);
  CHECK(kept.peer_names() == "a.test");
}

TEST_CASE("https: an encrypted private key is refused with the reason, never a pass-phrase prompt",
          "[integration][https]") {
  https_setup s;
  const std::string encrypted = s.certs.path() + "/a-encrypted.key";
  auto made = run_command({"/usr/bin/openssl", "pkey", "-in", s.a.key, "-aes128", "-passout", "pass:secret", "-out",
                           encrypted});
  REQUIRE(made.exit_code == 0);
  const std::string reason = "private key is encrypted: wakegate reads unencrypted keys only";

  // `check` on a terminal (script gives it one): OpenSSL's default would prompt and wait there.
  temp_dir dir;
  const std::string config_path = dir.path() + "/wakegate.yaml";
  {
    config_yaml c = s.config();
    c.extra[2] = "    - { cert: " + yaml_quote(s.a.cert) + ", key: " + yaml_quote(encrypted) + " }";
    std::ofstream(config_path) << c.str();
  }
  auto checked = run_command({"/usr/bin/script", "-qec", std::string(WAKEGATE_BINARY) + " check --config " + config_path,
                              "/dev/null"},
                             {}, 20s);
  INFO(checked.out << checked.err);
  CHECK(checked.exit_code == 1);
  CHECK(contains(checked.out, reason));
  CHECK_FALSE(contains(checked.out, "pass phrase"));

  // Swapped in at run time: the previous certificate stays in service.
  wakegate_process wg(s.config().str(), wakegate_options::cleaning({s.marker}));
  REQUIRE(presented_names(wg.https_port(), "a.test") == "a.test");
  std::rename(encrypted.c_str(), s.a.key.c_str());
  CHECK(wg.wait_for_record(
      [&](const auto& x) {
        return json_string(x, "msg") == "certificate reload failed: keeping the previous certificate" &&
               contains(json_string(x, "error"), reason);
      },
      15s));
  CHECK(presented_names(wg.https_port(), "a.test") == "a.test");
}

TEST_CASE("https: a certificate not valid yet is kept aside until it is, the previous one serving meanwhile",
          "[integration][https]") {
  https_setup s;
  wakegate_process wg(s.config().str(), wakegate_options::cleaning({s.marker}));
  REQUIRE(presented_names(wg.https_port(), "a.test") == "a.test");

  // Valid from 4 s from now: written aside, then moved over the served files.
  temp_dir aside;
  auto soon = make_self_signed_cert(aside.path(), "soon", {"a.test", "soon.a.test"}, 4, 30 * 86400);
  std::rename(soon.key.c_str(), s.a.key.c_str());
  std::rename(soon.cert.c_str(), s.a.cert.c_str());
  CHECK(wg.wait_for_record(
      [](const auto& x) {
        return json_string(x, "msg") == "certificate reload failed: keeping the previous certificate" &&
               contains(json_string(x, "error"), "is not valid before");
      },
      15s));
  CHECK(presented_names(wg.https_port(), "a.test") == "a.test");
  // Then it serves, with no change to the files.
  CHECK(wait_until([&] { return presented_names(wg.https_port(), "a.test") == "a.test,soon.a.test"; }, 20s, 200ms));
  CHECK(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "certificate now valid"; }, 1s));
}

TEST_CASE("https: a reload that changes no certificate keeps TLS sessions resumable by id", "[integration][https]") {
  https_setup s;
  wakegate_process wg(s.config().str(), wakegate_options::cleaning({s.marker}));
  temp_dir dir;
  const std::string session = dir.path() + "/session.pem";
  const std::vector<std::string> base{"-tls1_2", "-no_ticket", "-CAfile", s.ca.cert};
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> args = base;
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };
  auto first = s_client(wg.https_port(), "a.test", with({"-sess_out", session}));
  INFO(first.out);
  REQUIRE(contains(first.out, "New, TLSv1.2"));
  auto again = s_client(wg.https_port(), "a.test", with({"-sess_in", session}));
  REQUIRE(contains(again.out, "Reused, TLSv1.2"));

  wg.signal(SIGHUP);
  REQUIRE(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "reloaded"; }, 10s));
  auto after = s_client(wg.https_port(), "a.test", with({"-sess_in", session}));
  INFO(after.out);
  CHECK(contains(after.out, "Reused, TLSv1.2"));
}

TEST_CASE("https: a reload that removes listen.https and tls keeps the https listener serving until restart",
          "[integration][https]") {
  https_setup s;
  auto c = s.config();
  wakegate_process wg(c.str(), wakegate_options::cleaning({s.marker}));
  const auto port = wg.https_port();
  REQUIRE(curl_https(port, "a.test", "/", s.ca.cert).exit_code == 0);

  c.https.clear();
  c.extra.clear();
  wg.write_config(c.str());
  wg.signal(SIGHUP);
  REQUIRE(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "reloaded"; }, 10s));
  CHECK_FALSE(wg.records_with_msg("listen.https removed: the https listener keeps its TLS settings until restart").empty());
  auto r = curl_https(port, "a.test", "/", s.ca.cert);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(starts_with(r.out, "HTTP/1.1 200"));
}

namespace {

// An HTTP/1.0 GET of `target` over TLS; how the stream ended: "close_notify" (a clean end),
// "truncated" (closed without close_notify) or another error, and what was read.
std::string tls_http10_end(std::uint16_t port, const std::string& ca, const std::string& target, std::string& got) {
  namespace asio = boost::asio;
  asio::io_context ioc;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.load_verify_file(ca);
  asio::ssl::stream<asio::ip::tcp::socket> s(ioc, ctx);
  SSL_set_tlsext_host_name(s.native_handle(), "a.test");
  s.next_layer().connect({asio::ip::make_address("127.0.0.1"), port});
  s.handshake(asio::ssl::stream_base::client);
  asio::write(s, asio::buffer("GET " + target + " HTTP/1.0\r\nHost: a.test\r\n\r\n"));
  boost::system::error_code ec;
  char buf[4096];
  for (int reads = 0; reads < 1000; ++reads) {  // bounded: each read blocks until data or the end
    std::size_t n = s.read_some(asio::buffer(buf), ec);
    got.append(buf, n);
    if (ec) break;
  }
  if (ec == asio::error::eof) return "close_notify";
  if (ec == asio::ssl::error::stream_truncated) return "truncated";
  return ec.message();
}

}  // namespace

TEST_CASE("https: a response cut short ends without close_notify, a whole one with it", "[integration][https]") {
  https_setup s;
  auto c = s.config();
  c.apps[0].set("min_instances", "1");
  wakegate_process wg(c.str(), wakegate_options::cleaning({s.marker}));
  REQUIRE(wait_one_ready(wg.admin_port(), "a"));
  std::string got;
  // Read to the close by an HTTP/1.0 client: the instance's chunked body, cut mid-chunk.
  CHECK(tls_http10_end(wg.https_port(), s.ca.cert,
                       raw_target("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\npartial"), got) ==
        "truncated");
  INFO(got);
  CHECK(contains(got, "partial"));
  got.clear();
  CHECK(tls_http10_end(wg.https_port(), s.ca.cert, "/eof?n=3000", got) == "close_notify");
}

TEST_CASE("https: a client that hangs up while held leaves the queue and in-flight gauges at 0",
          "[integration][https]") {
  https_setup s;
  auto c = s.config();
  c.apps[0].set("startup_timeout", "60s").env_var("STARTUP_DELAY_MS", "10000");
  wakegate_process wg(c.str(), wakegate_options::cleaning({s.marker}));

  tls_connection conn(wg.https_port(), "a.test", s.ca.cert);
  REQUIRE(conn.connected());
  REQUIRE(conn.send_get("/"));
  app_status last;
  REQUIRE(wait_app(
      wg.admin_port(), "a", [](const app_status& a) { return a.queue_length == 1; }, 5s, &last));
  conn.close();

  // Noticed through the TLS stream while the instance still starts (it binds only after 10 s).
  bool drained = wait_app(
      wg.admin_port(), "a", [](const app_status& a) { return a.queue_length == 0 && a.in_flight == 0; }, 3s, &last);
  INFO("queue_length " << last.queue_length << ", in_flight " << last.in_flight);
  CHECK(drained);
  CHECK(last.count("ready") == 0);
  CHECK(wg.wait_for_record(
      [](const auto& x) { return json_string(x, "type") == "access" && json_number(x, "status").value_or(0) == 499; },
      3s));
}
