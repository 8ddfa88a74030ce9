// Base64 (RFC 4648): standard with padding, and base64url without padding.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace tern {

std::string base64_encode(std::string_view bytes);
// Strict: standard alphabet, padding required, no whitespace. nullopt on
// error, with the offset of the offending byte in `error_offset` when
// given, counted as the model's decoder (Go's StdEncoding) counts it, so the
// "illegal base64 data at input byte N" of a refusal matches.
// `skip_newlines`: CR and LF anywhere are passed over and counted in the
// offsets, as that decoder does (a client's AUTH line); without it they
// are errors.
enum class Newlines { refuse, skip };
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text, size_t* error_offset = nullptr,
                                                       Newlines newlines = Newlines::refuse);
std::string base64url_encode_nopad(std::string_view bytes);
// Strict inverse of base64url_encode_nopad: url alphabet, no padding, no
// whitespace. nullopt on error.
[[nodiscard]] std::optional<std::string> base64url_decode_nopad(std::string_view text);

}  // namespace tern
