// Lower-case hexadecimal (CRAM-MD5 responses, DKIM diagnostics, file names).
#pragma once
#include <string>
#include <string_view>

namespace tern {

std::string hex_lower(std::string_view bytes);

// The value of one hexadecimal digit, either case; -1 for any other byte.
int hex_digit_value(char c);
// The same for upper-case digits only, as RFC 3461 4 writes xtext's
// "+" HEXCHAR; -1 for any other byte, 'a'-'f' included.
int upper_hex_digit_value(char c);

}  // namespace tern
