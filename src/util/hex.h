// Lower-case hexadecimal (CRAM-MD5 responses, DKIM diagnostics, file names).
#pragma once
#include <string>
#include <string_view>

namespace tern {

std::string hex_lower(std::string_view bytes);

}  // namespace tern
