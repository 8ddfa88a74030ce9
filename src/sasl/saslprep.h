// SASLprep (RFC 4013), the stringprep profile (RFC 3454) that SASL
// mechanisms apply to user names and passwords so that the same text typed
// in different Unicode forms compares equal: non-ASCII spaces become
// U+0020, "commonly mapped to nothing" characters (soft hyphen, zero-width
// joiners…) are removed, the result is NFKC-normalised, and control
// characters, private-use code points and bad bidirectional text are
// rejected. Pure function over UTF-8, implemented with libidn.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace tern::sasl {

// RFC 3454 7: a "query" (text a client sends to log in) may contain code
// points unassigned in Unicode 3.2; a "stored string" (a password being set)
// must not.
enum class SaslprepUse { query, stored };

// The prepared UTF-8 string, or nullopt when SASLprep rejects `in`
// (prohibited output, bidi rules of RFC 3454 6, unassigned code points in a
// stored string, invalid UTF-8, a NUL byte).
std::optional<std::string> saslprep(std::string_view in, SaslprepUse use);

}  // namespace tern::sasl
