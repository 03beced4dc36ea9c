// first_non_text (16 bytes at a time) and iequals (8 at a time) against their byte-by-byte
// definitions.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>

#include "proxy/text_scan.hpp"

using wakegate::proxy::ascii_lower;
using wakegate::proxy::ascii_lower8;
using wakegate::proxy::first_non_text;
using wakegate::proxy::iequals;
using wakegate::proxy::is_text_byte;

namespace {
bool iequals_by_byte(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}
}  // namespace

TEST_CASE("text scan: every byte value at every position of blocks and tails", "[text_scan]") {
  CHECK(is_text_byte('\t'));
  CHECK(is_text_byte(' '));
  CHECK(is_text_byte('~'));
  CHECK(is_text_byte(0x80));
  CHECK(is_text_byte(0xff));
  CHECK_FALSE(is_text_byte('\r'));
  CHECK_FALSE(is_text_byte('\n'));
  CHECK_FALSE(is_text_byte(0));
  CHECK_FALSE(is_text_byte(0x1f));
  CHECK_FALSE(is_text_byte(0x7f));
  for (std::size_t len : {0, 1, 15, 16, 17, 31, 32, 40}) {
    std::string s(len, 'a');
    CHECK(first_non_text(s.data(), s.size()) == len);
    for (std::size_t pos = 0; pos < len; ++pos) {
      for (int b = 0; b < 256; ++b) {
        s.assign(len, 'a');
        s[pos] = static_cast<char>(b);
        std::size_t want = is_text_byte(static_cast<unsigned char>(b)) ? len : pos;
        if (first_non_text(s.data(), s.size()) != want) {
          INFO("len " << len << " pos " << pos << " byte " << b);
          CHECK(first_non_text(s.data(), s.size()) == want);
        }
      }
    }
  }
  // The first bad byte wins when there are several.
  std::string two(40, 'x');
  two[20] = '\n';
  two[33] = 0;
  CHECK(first_non_text(two.data(), two.size()) == 20);
}

TEST_CASE("text scan: ascii_lower8 lowers every byte value as ascii_lower does, in every lane", "[text_scan]") {
  for (int lane = 0; lane < 8; ++lane) {
    for (int c = 0; c < 256; ++c) {
      // The other lanes hold neighbours that could carry or borrow into this one.
      char bytes[8] = {'A', 'z', '\x7f', '\xff', '@', '[', '\x80', 'Z'};
      bytes[lane] = static_cast<char>(c);
      std::uint64_t in;
      std::memcpy(&in, bytes, 8);
      std::uint64_t out = ascii_lower8(in);
      char lowered[8];
      std::memcpy(lowered, &out, 8);
      INFO("lane " << lane << " byte " << c);
      for (int i = 0; i < 8; ++i) CHECK(lowered[i] == ascii_lower(bytes[i]));
    }
  }
}

TEST_CASE("text scan: iequals agrees with the byte-by-byte comparison at every length and position",
          "[text_scan]") {
  const std::string name = "Content-Security-Policy-Report-Only";  // 35 bytes
  for (std::size_t n = 0; n <= name.size(); ++n) {
    std::string a = name.substr(0, n), lower = a;
    for (auto& c : lower) c = ascii_lower(c);
    INFO("length " << n);
    CHECK(iequals(a, lower));
    CHECK(iequals(lower, a));
    CHECK_FALSE(iequals(a, lower + "x"));
    // One byte changed at each position, to each value: equal exactly when the bytes agree.
    for (std::size_t i = 0; i < n; ++i) {
      for (int c = 0; c < 256; ++c) {
        std::string b = lower;
        b[i] = static_cast<char>(c);
        if (iequals(a, b) != iequals_by_byte(a, b)) FAIL("position " << i << " byte " << c);
      }
    }
  }
}
