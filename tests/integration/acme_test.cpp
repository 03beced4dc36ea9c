// ACME end to end against Pebble: wakegate orders a certificate for an app host (HTTP-01 answered
// on its own http listener, even with redirect_http on), serves it, keeps it across a restart
// without ordering again, and renews it when renew_before exceeds the certificate's lifetime.
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "tests/support/integration.hpp"
#include "tests/support/pebble.hpp"
#include "tests/support/tls.hpp"

using namespace wakegate::test;

namespace {

unsigned mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 0777;
}

bool has_record(const wakegate_process& wg, const std::string& msg, const std::string& host) {
  for (const auto& r : wg.log_records())
    if (json_string(r, "msg") == msg && json_string(r, "host") == host) return true;
  return false;
}

}  // namespace

TEST_CASE("acme: obtains a certificate from Pebble, serves it, keeps it across restarts, renews it",
          "[integration][acme]") {
  auto http_port = free_port();
  pebble_server pebble(http_port);
  temp_dir storage_parent;
  const std::string storage = storage_parent.path() + "/acme";
  auto marker = unique_marker();

  auto config = [&](const std::string& renew_before) {
    config_yaml c;
    c.http = "127.0.0.1:" + std::to_string(http_port);
    c.https = "127.0.0.1:0";
    c.extra = {"tls:",
               "  redirect_http: true",
               "  acme:",
               "    directory: " + yaml_quote(pebble.directory_url()),
               "    email: ops@example.test",
               "    storage: " + yaml_quote(storage),
               "    ca_bundle: " + yaml_quote(pebble.ca_file()),
               "    renew_before: " + renew_before,
               "    retry_after: 1s"};
    c.apps.push_back(app_yaml("app", {"app.test"}, marker));
    return c.str();
  };
  auto obtained = [](const boost::json::object& x) {
    return json_string(x, "msg") == "acme: certificate obtained" && json_string(x, "host") == "app.test";
  };

  std::string first_cert;
  {
    wakegate_process wg(config("30d"), wakegate_options::cleaning({marker}));
    INFO(pebble.log());
    REQUIRE(wg.wait_for_record(obtained, 90s));
    auto root = pebble.root_file();
    REQUIRE(!root.empty());
    // Served at once, verified with Pebble's root, through a cold start of the app.
    REQUIRE(wait_until([&] { return presented_names(wg.https_port(), "app.test") == "app.test"; }, 10s, 50ms));
    auto r = curl_https(wg.https_port(), "app.test", "/", root);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(starts_with(r.out, "HTTP/1.1 200"));
    // Plain http still redirects; only the challenge path was answered there.
    auto plain = http_get(wg.http_port(), "app.test", "/x");
    CHECK(plain.status == 308);
    CHECK(wait_metric(wg.admin_port(), "wakegate_acme_orders_total", {{"result", "success"}}, 1, 5s));
    CHECK(scrape_value(wg.admin_port(), "wakegate_certificate_expiry_timestamp_seconds", {{"host", "app.test"}})
              .value_or(0) > static_cast<double>(std::time(nullptr)));

    CHECK(mode_of(storage) == 0700);
    CHECK(mode_of(storage + "/certificates") == 0700);
    CHECK(mode_of(storage + "/account.key") == 0600);
    CHECK(mode_of(storage + "/certificates/app.test.key") == 0600);
    CHECK(mode_of(storage + "/certificates/app.test.crt") == 0600);
    first_cert = read_file(storage + "/certificates/app.test.crt");
    CHECK(contains(first_cert, "BEGIN CERTIFICATE"));
  }

  {
    // Restart: the stored certificate is served, nothing is ordered.
    wakegate_process wg(config("30d"), wakegate_options::cleaning({marker}));
    REQUIRE(wg.wait_for_record(
        [](const auto& x) {
          return json_string(x, "msg") == "acme: certificate loaded from storage" && json_string(x, "host") == "app.test";
        },
        10s));
    CHECK(wait_until([&] { return presented_names(wg.https_port(), "app.test") == "app.test"; }, 10s, 50ms));
    CHECK(holds_for([&] { return !has_record(wg, "acme: ordering certificate", "app.test"); }, 1500ms));
    CHECK(scrape_value(wg.admin_port(), "wakegate_acme_orders_total", {{"result", "success"}}).value_or(-1) == 0);
    CHECK(read_file(storage + "/certificates/app.test.crt") == first_cert);
  }

  {
    // renew_before longer than the certificate's lifetime: renewed at start, once.
    wakegate_process wg(config("3650d"), wakegate_options::cleaning({marker}));  // the most a duration may be; Pebble's certificates last about 5 years
    INFO(pebble.log());
    REQUIRE(wg.wait_for_record(obtained, 90s));
    CHECK(read_file(storage + "/certificates/app.test.crt") != first_cert);
    CHECK(wait_metric(wg.admin_port(), "wakegate_acme_orders_total", {{"result", "success"}}, 1, 5s));
    auto root = pebble.root_file();
    auto r = curl_https(wg.https_port(), "app.test", "/", root);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
  }
}

TEST_CASE("acme: an unreachable CA is retried with backoff and logged, plain http keeps serving",
          "[integration][acme]") {
  temp_dir storage;
  auto marker = unique_marker();
  config_yaml c;
  c.https = "127.0.0.1:0";
  const refused_port ca;  // held for the test: a released free_port() was once taken by a test beside it
  c.extra = {"tls:", "  acme:", "    directory: \"https://127.0.0.1:" + std::to_string(ca.port()) + "/dir\"",
             "    storage: " + yaml_quote(storage.path() + "/acme"), "    retry_after: 1s"};
  c.apps.push_back(app_yaml("app", {"app.test"}, marker));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  auto failed = [](const boost::json::object& x) {
    return json_string(x, "msg") == "acme: order failed" && contains(json_string(x, "error"), "cannot connect");
  };
  REQUIRE(wg.wait_for_record(failed, 10s));
  CHECK(wait_metric(wg.admin_port(), "wakegate_acme_orders_total", {{"result", "failure"}}, 2, 10s));
  // /status says why the host has no certificate yet.
  auto status = fetch_status_json(wg.admin_port());
  REQUIRE(status);
  const auto& acme = status->at("tls").at("acme").as_array();
  REQUIRE(acme.size() == 1);
  CHECK(acme[0].at("host").as_string() == "app.test");
  CHECK(contains(std::string(acme[0].at("last_error").as_string()), "cannot connect"));
  CHECK(acme[0].at("consecutive_failures").as_int64() >= 2);
  CHECK(status->at("tls").at("certificates").as_array().empty());
  auto r = http_get(wg.http_port(), "app.test", "/");
  CHECK(r.status == 200);
  // No certificate yet: TLS handshakes fail instead of serving something wrong.
  CHECK(presented_names(wg.https_port(), "app.test").empty());

  // The ACME client is made at start: a reload that changes tls.acme says it is kept (found by
  // black-box testing: the change was dropped without a word), and the rest of the file applies.
  config_yaml changed = c;
  for (auto& line : changed.extra)
    if (contains(line, "retry_after")) line = "    retry_after: 7s";
  changed.apps.push_back(app_yaml("other", {"other.test"}, marker));
  wg.write_config(changed.str());
  wg.signal(SIGHUP);
  CHECK(wg.wait_for_record(
      [](const auto& x) { return json_string(x, "msg") == "tls.acme changes only on restart: keeping the running ACME settings"; },
      5s));
  CHECK(wg.wait_for_record([](const auto& x) { return json_string(x, "msg") == "reloaded"; }, 5s));
  CHECK(http_get(wg.http_port(), "other.test", "/").status == 200);
}

TEST_CASE("acme: a storage it cannot write is an order failure in /status, tried again until the operator fixes it",
          "[integration][acme]") {
  auto http_port = free_port();
  pebble_server pebble(http_port);
  temp_dir storage;
  const std::string blocker = storage.path() + "/acme/certificates";
  REQUIRE(mkdir((storage.path() + "/acme").c_str(), 0700) == 0);
  { std::ofstream(blocker) << "a file where the certificates directory goes\n"; }
  auto marker = unique_marker();
  config_yaml c;
  c.http = "127.0.0.1:" + std::to_string(http_port);
  c.https = "127.0.0.1:0";
  c.extra = {"tls:", "  acme:", "    directory: " + yaml_quote(pebble.directory_url()),
             "    storage: " + yaml_quote(storage.path() + "/acme"), "    ca_bundle: " + yaml_quote(pebble.ca_file()),
             "    retry_after: 1s"};
  c.apps.push_back(app_yaml("app", {"app.test"}, marker));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));
  // Found by black-box testing: the client stopped for good, /status and the metrics said nothing.
  CHECK(wait_metric(wg.admin_port(), "wakegate_acme_orders_total", {{"result", "failure"}}, 1, 10s));
  auto status = fetch_status_json(wg.admin_port());
  REQUIRE(status);
  const auto& acme = status->at("tls").at("acme").as_array();
  REQUIRE(acme.size() == 1);
  CHECK(contains(std::string(acme[0].at("last_error").as_string()), "cannot create " + blocker));
  CHECK(wg.records_with_msg("acme client stopped").empty());

  REQUIRE(std::remove(blocker.c_str()) == 0);  // the operator's fix: taken at the next attempt
  INFO(pebble.log());
  CHECK(wg.wait_for_record(
      [](const auto& x) { return json_string(x, "msg") == "acme: certificate obtained" && json_string(x, "host") == "app.test"; },
      90s));
}
