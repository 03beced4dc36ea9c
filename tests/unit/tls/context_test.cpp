// cert_set: one context per certificate, SNI lookup exact-then-wildcard, default; ticket keys.
#include "tls/context.hpp"

#include <catch2/catch.hpp>

#include "config/certificate.hpp"
#include "tests/support/process.hpp"
#include "tests/support/tls.hpp"

using namespace wakegate;
using namespace wakegate::test;

namespace {

tls::certificate_source source_of(const cert_files& f) {
  std::string why;
  return {f.cert, *config::read_text_file(f.cert, why), *config::read_text_file(f.key, why)};
}

}  // namespace

TEST_CASE("cert_set: exact names first, then one-label wildcards, default for the rest", "[tls]") {
  temp_dir d;
  auto ca = make_test_ca(d.path());
  auto a = make_test_cert(d.path(), "a", {"a.test", "www.a.test"}, ca);
  auto w = make_test_cert(d.path(), "w", {"*.a.test", "*.b.test"}, ca);
  auto set = tls::cert_set::build({source_of(a), source_of(w)});
  REQUIRE(set->certificates().size() == 2);
  CHECK(set->find("a.test") == &set->certificates()[0]);
  CHECK(set->find("www.a.test") == &set->certificates()[0]);  // exact beats the wildcard
  CHECK(set->find("api.a.test") == &set->certificates()[1]);
  CHECK(set->find("x.b.test") == &set->certificates()[1]);
  CHECK(set->find("y.x.b.test") == nullptr);
  CHECK(set->find("b.test") == nullptr);
  CHECK(set->find("*.b.test") == &set->certificates()[1]);
  CHECK(set->covers("api.a.test"));
  CHECK_FALSE(set->covers("c.test"));
  CHECK(&set->default_context() == set->certificates()[0].ctx.get());

  auto with_default = tls::cert_set::build({source_of(a), source_of(w)}, "x.b.test");
  CHECK(&with_default->default_context() == with_default->certificates()[1].ctx.get());
  CHECK_THROWS_WITH(tls::cert_set::build({source_of(a)}, "c.test"), Catch::Contains("default_certificate c.test"));
  CHECK_THROWS(tls::cert_set::build({}));
}

TEST_CASE("cert_set: a key that does not match is refused, naming the source", "[tls]") {
  temp_dir d;
  auto ca = make_test_ca(d.path());
  auto a = make_test_cert(d.path(), "a", {"a.test"}, ca);
  auto b = make_test_cert(d.path(), "b", {"b.test"}, ca);
  auto mixed = source_of(a);
  mixed.key_pem = source_of(b).key_pem;
  CHECK_THROWS_WITH(tls::cert_set::build({mixed}), Catch::Contains(a.cert) && Catch::Contains("does not match"));
}

TEST_CASE("ticket keys: a new key in front, the previous one kept for decryption", "[tls]") {
  auto k1 = tls::rotate_ticket_keys(nullptr);
  REQUIRE(k1->keys.size() == 1);
  auto k2 = tls::rotate_ticket_keys(k1.get());
  REQUIRE(k2->keys.size() == 2);
  CHECK(k2->keys[1].name == k1->keys[0].name);
  CHECK(k2->keys[0].name != k1->keys[0].name);
  auto k3 = tls::rotate_ticket_keys(k2.get());
  REQUIRE(k3->keys.size() == 2);
  CHECK(k3->keys[1].name == k2->keys[0].name);
}
