// Reading a MIME message's parts (RFC 2045, RFC 2046, RFC 2047) for the
// code that looks inside messages: the junk filter's text and the DMARC and
// TLS report attachments. Lenient, as mail in the wild demands: a broken
// part is passed over, never an error for the whole message. Bounded: at
// most `max_depth` nested multiparts and `max_parts` leaf parts.
#pragma once
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::message {

// A Content-Type value split up: type/subtype lower-cased, parameters with
// lower-cased names (RFC 2045 5.1; quoted values unquoted).
struct ContentType {
	std::string type = "text";
	std::string subtype = "plain";
	std::vector<std::pair<std::string, std::string>> params;
	std::string param(std::string_view name) const;  // "" when absent
	std::string mime_type() const { return type + "/" + subtype; }
};
ContentType parse_content_type(std::string_view value);

// One leaf part: its type, the file name it was sent with (Content-Disposition
// filename or Content-Type name), and its body with the transfer encoding
// undone (base64, quoted-printable; others as they are).
struct MimePart {
	ContentType content_type;
	std::string filename;
	std::string body;
};

struct MimeLimits {
	int max_depth = 8;
	size_t max_parts = 100;
};

// Calls `visit` for each leaf part of `message`, in order.
void walk_mime(std::string_view message, const std::function<void(const MimePart&)>& visit,
               const MimeLimits& limits = {});

// Transfer decodings (RFC 2045 6.7, 6.8), lenient: invalid escapes stay as
// they are, white space and bytes outside the base64 alphabet are skipped.
std::string decode_quoted_printable(std::string_view text);
std::string decode_base64_lenient(std::string_view text);

// Converts text in `charset` to UTF-8 (iconv); unknown charsets and invalid
// bytes leave the text as it was, with invalid bytes dropped.
std::string to_utf8(std::string_view text, std::string_view charset);

// RFC 2047 encoded words in an unstructured header value, decoded to UTF-8;
// white space between adjacent encoded words is dropped (RFC 2047 6.2).
std::string decode_encoded_words(std::string_view value);

// UTF-8 text as RFC 2047 "B" encoded words for a phrase (a display name):
// each word at most 68 characters, cut between UTF-8 sequences, the words
// folded apart with CRLF SP, so a header line holding one stays within
// the 76 characters of RFC 2047 2.
std::string encode_words(std::string_view utf8);

}  // namespace tern::message
