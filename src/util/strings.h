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

// RFC 5234 B.1 core rules, ASCII only: bytes above 0x7f are none of them,
// whatever the locale.
constexpr bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_ascii_alnum(char c) { return is_ascii_alpha(c) || is_ascii_digit(c); }
constexpr bool is_wsp(char c) { return c == ' ' || c == '\t'; }  // WSP
// A C0 control character or DEL (RFC 5234 B.1 CTL): what may start a new
// line or an escape sequence where a name or a log line is written. Takes
// a byte (as unsigned char) or a decoded code point.
constexpr bool is_ascii_control(char32_t c) { return c < 0x20 || c == 0x7f; }
// Code points that change how a terminal shows what follows without being
// seen: the C1 controls (U+0080-U+009F; U+009B is CSI, an escape sequence
// on terminals that take 8-bit controls) and the bidirectional formatting
// characters (Unicode UAX #9: LRM, RLM, the embeddings and overrides
// U+202A-U+202E, the isolates U+2066-U+2069), with which a value can make
// a log line read differently from what it holds.
constexpr bool is_hidden_control(char32_t c) {
	return (c >= 0x80 && c <= 0x9f) || c == 0x200e || c == 0x200f || (c >= 0x202a && c <= 0x202e) ||
	    (c >= 0x2066 && c <= 0x2069);
}
bool has_ascii_control(std::string_view);

std::string ascii_lower(std::string_view);
std::string ascii_upper(std::string_view);
bool iequals(std::string_view a, std::string_view b);  // ASCII case-insensitive
bool istarts_with(std::string_view s, std::string_view prefix);
bool iends_with(std::string_view s, std::string_view suffix);
std::string_view trim(std::string_view);  // spaces and tabs
std::vector<std::string_view> split(std::string_view s, char sep);
bool is_ascii(std::string_view);
// A DNS name in the form names are compared and keyed in: lower case
// (RFC 4343: names are case-insensitive) and without the one trailing dot
// of an absolute name ("example.org." is "example.org", the root is "");
// "example.org.." is no valid name and stays apart from both.
std::string canonical_dns_name(std::string_view name);
// Every bare LF and every bare CR becomes CRLF (RFC 5322 2.1 line ends),
// as the SMTP ports store bare line ends (smtp::DataDecoder does the same
// for data as it streams): messages read from files with Unix line ends,
// header values and bodies a milter writes.
std::string to_crlf(std::string_view text);
// Splits "local@domain" at the last '@' (a quoted localpart may hold
// one); domain "" when there is none.
void split_address(std::string_view address, std::string& localpart, std::string& domain);
// One UTF-8 sequence at the start of a non-empty `s` (RFC 3629 3: no
// overlong forms, surrogates or code points above U+10FFFF). Invalid input
// yields U+FFFD with length 1 and valid false, so a caller always makes
// progress.
struct Utf8Rune {
	char32_t cp;
	size_t len;
	bool valid;
};
Utf8Rune decode_utf8(std::string_view s);
// Whether all of `s` is UTF-8 by decode_utf8's rules.
bool valid_utf8(std::string_view s);
// The largest position at or before `i` (at most s.size()) that starts a
// character: not inside a UTF-8 sequence, so s[0, result) can be cut off.
size_t utf8_char_start(std::string_view s, size_t i);
// Appends code point `cp` (at most U+10FFFF, the caller checked) as UTF-8
// (RFC 3629 3).
void append_utf8(std::string& out, char32_t cp);
// Appends `text` with each control byte (C0, DEL), each byte that no
// UTF-8 sequence explains and each byte of a hidden control
// (is_hidden_control) written as \xNN, and a backslash before each
// character of `backslashed`: text from the network that a log line or a
// terminal shows can neither forge a line, nor send an escape sequence,
// nor reorder what the line shows.
void append_escaped_text(std::string& out, std::string_view text, std::string_view backslashed = {});

}  // namespace tern
