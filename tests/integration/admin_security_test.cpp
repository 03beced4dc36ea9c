// Admin listener security: admin.token (bearer) guards /status; /metrics and /status never show
// the values of an app's `env`.
#include <catch2/catch.hpp>
#include <string>

#include "tests/support/integration.hpp"

using namespace wakegate::test;

TEST_CASE("admin.token is required for /status, and env values appear nowhere", "[integration][admin]") {
  const std::string token = "t0k3n-0123456789-abcdef";
  const std::string secret = "s3cr3t-" + unique_marker();
  auto marker = unique_marker();
  config_yaml c;
  c.extra.push_back("admin: {token: " + token + "}");
  c.apps.push_back(app_yaml("t", {"t.test"}, marker).set("min_instances", "1").env_var("API_KEY", secret));
  wakegate_process wg(c.str(), wakegate_options::cleaning({marker}));

  const header_list auth{{"Authorization", "Bearer " + token}};
  http_response status;
  CHECK(wait_until(
      [&] {
        status = http_get(wg.admin_port(), "localhost", "/status", auth);
        return status.status == 200 && contains(status.body, "\"ready\"");
      },
      15s));
  INFO(describe(status));
  CHECK_FALSE(contains(status.body, secret));

  auto none = http_get(wg.admin_port(), "localhost", "/status");
  CHECK(none.status == 401);
  CHECK(contains(none.header("WWW-Authenticate"), "Bearer"));
  CHECK(http_get(wg.admin_port(), "localhost", "/status", {{"Authorization", "Bearer " + token + "x"}}).status == 401);
  CHECK(http_get(wg.admin_port(), "localhost", "/status", {{"Authorization", "Basic " + token}}).status == 401);
  CHECK(http_get(wg.admin_port(), "localhost", "/status", {{"Authorization", "bearer " + token}}).status == 200);

  auto metrics = http_get(wg.admin_port(), "localhost", "/metrics");
  CHECK(metrics.status == 200);
  CHECK_FALSE(contains(metrics.body, secret));
  CHECK(http_get(wg.admin_port(), "localhost", "/healthz").status == 200);
  // The instance got it, though.
  CHECK(http_get(wg.http_port(), "t.test", "/").status == 200);
  for (const auto& line : wg.stderr_lines()) CHECK_FALSE(contains(line, secret));
}
