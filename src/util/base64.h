// Base64 (RFC 4648): standard with padding, and base64url without padding.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace tern {

std::string base64_encode(std::string_view bytes);
// Strict: standard alphabet, padding required, no whitespace. nullopt on error.
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text);
std::string base64url_encode_nopad(std::string_view bytes);
// Strict inverse of base64url_encode_nopad: url alphabet, no padding, no
// whitespace. nullopt on error.
[[nodiscard]] std::optional<std::string> base64url_decode_nopad(std::string_view text);

}  // namespace tern
