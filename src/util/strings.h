// Small ASCII string helpers shared by every layer.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace tern {

// RFC 1035 2.3.4: a label is at most 63 octets, a name at most 255 on the
// wire, which is 253 characters as text without the trailing dot.
inline constexpr size_t max_dns_label_len = 63;
inline constexpr size_t max_dns_name_len = 253;

std::string ascii_lower(std::string_view);
std::string ascii_upper(std::string_view);
bool iequals(std::string_view a, std::string_view b);  // ASCII case-insensitive
bool istarts_with(std::string_view s, std::string_view prefix);
bool iends_with(std::string_view s, std::string_view suffix);
std::string_view trim(std::string_view);  // spaces and tabs
std::vector<std::string_view> split(std::string_view s, char sep);
bool is_ascii(std::string_view);
// Every bare LF becomes CRLF (RFC 5322 2.1 line ends), e.g. for messages
// read from files with Unix line ends.
std::string to_crlf(std::string_view text);
// Appends code point `cp` (at most U+10FFFF, the caller checked) as UTF-8
// (RFC 3629 3).
void append_utf8(std::string& out, char32_t cp);

}  // namespace tern
