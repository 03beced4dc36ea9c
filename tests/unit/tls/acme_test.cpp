// The JOSE pieces of the ACME client: base64url, JWK and thumbprint, ES256 JWS, CSR.
#include "tls/acme.hpp"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

using namespace wakegate;

namespace {

std::string base64url_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : in) {
    int v = val(c);
    REQUIRE(v >= 0);
    buf = (buf << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xff));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("acme: base64url without padding (RFC 4648 test vectors)", "[tls][acme]") {
  CHECK(tls::base64url("") == "");
  CHECK(tls::base64url("f") == "Zg");
  CHECK(tls::base64url("fo") == "Zm8");
  CHECK(tls::base64url("foo") == "Zm9v");
  CHECK(tls::base64url("foob") == "Zm9vYg");
  CHECK(tls::base64url("fooba") == "Zm9vYmE");
  CHECK(tls::base64url("foobar") == "Zm9vYmFy");
  CHECK(tls::base64url("\xfb\xff") == "-_8");
}

TEST_CASE("acme: keys round-trip through PEM, JWK members in thumbprint order", "[tls][acme]") {
  auto key = tls::generate_p256_key();
  auto pem = tls::private_key_pem(key.get());
  auto again = tls::private_key_from_pem(pem);
  REQUIRE(again);
  CHECK(tls::jwk_json(key.get()) == tls::jwk_json(again.get()));
  auto jwk = boost::json::parse(tls::jwk_json(key.get())).as_object();
  CHECK(jwk.at("kty").as_string() == "EC");
  CHECK(jwk.at("crv").as_string() == "P-256");
  CHECK(base64url_decode(jwk.at("x").as_string()).size() == 32);
  CHECK(base64url_decode(jwk.at("y").as_string()).size() == 32);
  CHECK(tls::jwk_json(key.get()).starts_with(R"({"crv":"P-256","kty":"EC","x":")"));
  CHECK(tls::jwk_thumbprint(key.get()).size() == 43);  // 32 bytes
  CHECK_FALSE(tls::private_key_from_pem("garbage"));
}

TEST_CASE("acme: ES256 JWS verifies with the public key (r||s signature)", "[tls][acme]") {
  auto key = tls::generate_p256_key();
  std::string prot = R"({"alg":"ES256","nonce":"n","url":"https://ca.test/x"})";
  std::string payload = R"({"hello":"world"})";
  auto jws = boost::json::parse(tls::jws_sign(key.get(), prot, payload)).as_object();
  std::string p = std::string(jws.at("protected").as_string());
  std::string pl = std::string(jws.at("payload").as_string());
  CHECK(base64url_decode(p) == prot);
  CHECK(base64url_decode(pl) == payload);
  std::string raw = base64url_decode(jws.at("signature").as_string());
  REQUIRE(raw.size() == 64);

  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr),
                 BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr));
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  std::string input = p + "." + pl;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  REQUIRE(EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key.get()) == 1);
  CHECK(EVP_DigestVerify(md, der, static_cast<std::size_t>(der_len), reinterpret_cast<const unsigned char*>(input.data()),
                         input.size()) == 1);
  input[0] ^= 1;
  CHECK(EVP_DigestVerify(md, der, static_cast<std::size_t>(der_len), reinterpret_cast<const unsigned char*>(input.data()),
                         input.size()) != 1);
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
}

TEST_CASE("acme: the CSR names the host and is signed by the certificate key", "[tls][acme]") {
  auto key = tls::generate_p256_key();
  std::string der = tls::csr_der(key.get(), "app.example.test");
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size()));
  REQUIRE(req != nullptr);
  CHECK(X509_REQ_verify(req, key.get()) == 1);
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  REQUIRE(exts != nullptr);
  bool found = false;
  for (int i = 0; i < sk_X509_EXTENSION_num(exts); ++i) {
    X509_EXTENSION* e = sk_X509_EXTENSION_value(exts, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) != NID_subject_alt_name) continue;
    auto* names = static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(e));
    REQUIRE(sk_GENERAL_NAME_num(names) == 1);
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, 0);
    REQUIRE(gn->type == GEN_DNS);
    CHECK(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName))) == "app.example.test");
    GENERAL_NAMES_free(names);
    found = true;
  }
  CHECK(found);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);
}
