// first_non_text (16 bytes at a time) against the byte-by-byte definition.
#include <catch2/catch.hpp>

#include <string>

#include "proxy/text_scan.hpp"

using wakegate::proxy::first_non_text;
using wakegate::proxy::is_text_byte;

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
