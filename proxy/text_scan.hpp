// The character classes and small text helpers of HTTP/1.1 heads, shared by the request checks
// (framing.cpp), the forwarded head (headers.cpp) and the response fast path (response_head.cpp).
// Field values are checked 16 bytes at a time: the head scans spend most of their time there.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace wakegate::proxy {

namespace detail {
constexpr std::array<bool, 256> make_tchar() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
}  // namespace detail

// tchar (RFC 9110 5.6.2): the bytes of a token (field names, methods, list items).
inline constexpr std::array<bool, 256> tchar = detail::make_tchar();

inline bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!tchar[static_cast<unsigned char>(c)]) return false;
  return true;
}

constexpr char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// ascii_lower of 8 bytes at once: 'A'..'Z' become 'a'..'z', every other byte value stays.
constexpr std::uint64_t ascii_lower8(std::uint64_t x) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101ull;
  const std::uint64_t low7 = x & (0x7f * ones);      // adding to these cannot carry into the next byte
  const std::uint64_t ge_a = low7 + (0x80 - 'A') * ones;  // bit 7 set where the low 7 bits >= 'A'
  const std::uint64_t gt_z = low7 + (0x7f - 'Z') * ones;  // bit 7 set where they are > 'Z'
  const std::uint64_t upper = (ge_a ^ gt_z) & ~x & (0x80 * ones);  // ...and the byte is ASCII
  return x | (upper >> 2);  // 0x20 where upper
}

inline std::uint64_t load8(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Case-insensitive (ASCII) equality, as field names and tokens compare. 8 bytes at a time: the
// request and response heads compare names against a few dozen known ones per request.
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  const std::size_t n = a.size();
  if (n != b.size()) return false;
  if (n < 8) {
    for (std::size_t i = 0; i < n; ++i)
      if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
  }
  for (std::size_t i = 0; i + 8 <= n; i += 8)
    if (ascii_lower8(load8(a.data() + i)) != ascii_lower8(load8(b.data() + i))) return false;
  // The last 8 bytes (overlapping what was compared) cover a tail shorter than 8.
  return ascii_lower8(load8(a.data() + n - 8)) == ascii_lower8(load8(b.data() + n - 8));
}

// Without optional whitespace (SP, HTAB) at either end.
inline std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// HTAB, SP, VCHAR and obs-text: what a field value (or a reason phrase) may hold.
constexpr bool is_text_byte(unsigned char c) noexcept { return c == '\t' || (c >= 0x20 && c != 0x7f); }

// Index of the first byte of p[0, n) that is not text (a control, CR and LF included, or DEL);
// n when all are.
inline std::size_t first_non_text(const char* p, std::size_t n) noexcept {
  std::size_t i = 0;
#if defined(__SSE2__)
  const __m128i ctl_max = _mm_set1_epi8(0x1f);
  const __m128i del = _mm_set1_epi8(0x7f);
  const __m128i tab = _mm_set1_epi8('\t');
  for (; i + 16 <= n; i += 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    __m128i ctl = _mm_cmpeq_epi8(_mm_max_epu8(v, ctl_max), ctl_max);  // v <= 0x1f, unsigned
    ctl = _mm_andnot_si128(_mm_cmpeq_epi8(v, tab), ctl);
    int bad = _mm_movemask_epi8(_mm_or_si128(ctl, _mm_cmpeq_epi8(v, del)));
    if (bad != 0) return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(bad)));
  }
#endif
  for (; i < n; ++i)
    if (!is_text_byte(static_cast<unsigned char>(p[i]))) return i;
  return n;
}

}  // namespace wakegate::proxy
