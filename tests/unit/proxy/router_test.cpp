#include <catch2/catch.hpp>

#include "proxy/router.hpp"

using namespace wakegate;

namespace {

scaler::app_ptr make_app(std::string name, std::vector<std::string> hosts) {
  config::app_config c;
  c.name = std::move(name);
  c.hosts = std::move(hosts);
  return std::make_shared<scaler::app>(c);
}

}  // namespace

TEST_CASE("router: exact hosts match case-insensitively with the port ignored", "[router]") {
  auto a = make_app("a", {"a.test", "www.a.test"});
  auto b = make_app("b", {"b.test"});
  proxy::router r({a, b});
  REQUIRE(r.find("a.test") != nullptr);
  CHECK(r.find("a.test")->app == a);
  CHECK(r.find("A.TEST")->app == a);
  CHECK(r.find("a.test:8080")->app == a);
  CHECK(r.find("www.a.test")->app == a);
  CHECK(r.find("b.test")->app == b);
  CHECK(r.find("a.test.")->app == a);  // absolute form
  CHECK(r.find("c.test") == nullptr);
  CHECK(r.find("") == nullptr);
  CHECK(r.find(":80") == nullptr);
}

TEST_CASE("router: a wildcard matches exactly one leading label and exact names win", "[router]") {
  auto w = make_app("w", {"*.w.test"});
  auto x = make_app("x", {"x.w.test"});
  proxy::router r({w, x});
  CHECK(r.find("a.w.test")->app == w);
  CHECK(r.find("A.W.Test:443")->app == w);
  CHECK(r.find("x.w.test")->app == x);
  CHECK(r.find("w.test") == nullptr);
  CHECK(r.find("a.b.w.test") == nullptr);
  CHECK(r.find("aw.test") == nullptr);
  CHECK(r.find(".w.test") == nullptr);
}

TEST_CASE("router: normalize strips ports and IPv6 brackets and rejects junk", "[router]") {
  std::string out;
  CHECK(proxy::router::normalize("Example.COM:8080", out));
  CHECK(out == "example.com");
  CHECK(proxy::router::normalize("[::1]:8080", out));
  CHECK(out == "[::1]");
  CHECK_FALSE(proxy::router::normalize("[::1", out));
  CHECK_FALSE(proxy::router::normalize("", out));
  CHECK_FALSE(proxy::router::normalize(std::string(300, 'a'), out));
}

TEST_CASE("router: an empty table routes nothing", "[router]") {
  proxy::router r;
  CHECK(r.find("a.test") == nullptr);
}
