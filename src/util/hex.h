// Lower-case hexadecimal (CRAM-MD5 responses, DKIM diagnostics, file names).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace tern {

std::string hex_lower(std::string_view bytes);

// Appends `byte` as two hexadecimal digits, in the case the encoding
// writes them: upper for xtext, %XX and quoted-printable (RFC 3461 4,
// RFC 3986 2.1, RFC 2045 6.7), lower for escapes in logs and replies.
enum class HexCase { lower, upper };
void append_hex_byte(std::string& out, unsigned char byte, HexCase letters = HexCase::lower);
// Appends the low `digits` hexadecimal digits of `value`, most significant
// first (a code point's \uXXXX, a DNS name's nibble labels).
void append_hex_digits(std::string& out, uint64_t value, int digits, HexCase letters = HexCase::lower);
// How many hexadecimal digits `value` takes without leading zeros (1 for 0).
int hex_digit_count(uint64_t value);

// The value of one hexadecimal digit, either case; -1 for any other byte.
int hex_digit_value(char c);
// The same for upper-case digits only, as RFC 3461 4 writes xtext's
// "+" HEXCHAR; -1 for any other byte, 'a'-'f' included.
int upper_hex_digit_value(char c);

}  // namespace tern
