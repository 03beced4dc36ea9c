// Field-value bytes checked 16 at a time: the scans of request and response heads (framing.cpp,
// response_head.cpp) spend most of their time here, byte by byte otherwise.
#pragma once

#include <cstddef>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace wakegate::proxy {

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
