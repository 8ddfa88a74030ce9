// Reading a message's header section (RFC 5322 2.2, 3.6) without changing a
// byte: each field keeps its raw text (name, colon, folded value, CRLF) so
// that DKIM's "simple" canonicalization (RFC 6376 3.4.1) can hash it as
// received. Pure; unit-tested through the DKIM tests.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::message {

struct HeaderField {
	std::string name;        // as written, trailing WSP before the colon removed
	std::string lower_name;  // ASCII lower case, for case-insensitive lookups
	std::string raw;         // the whole field as in the message, with its final line end
	// Everything after the colon, still folded, with the final line end.
	std::string_view value() const;
	// The value unfolded (RFC 5322 2.2.3: CRLF before WSP removed), final
	// line end removed, surrounding WSP trimmed.
	std::string unfolded_value() const;
};

struct HeaderSection {
	std::vector<HeaderField> fields;
	// Offset of the first body byte: just past the empty line ending the
	// header section, or the message size when there is no empty line.
	size_t body_offset = 0;
	// Whether the empty line separating header and body was present.
	bool has_separator = false;
};

// The most fields a header section may have. Each costs about a hundred
// bytes beside its text, so a section of tiny fields would take 25 times
// its size in memory; no real message comes near (doc/behaviour.md D19).
inline constexpr size_t max_header_fields = 10000;

// Splits the header section at the start of `message`. A line ends at LF
// (normally CRLF; a bare LF is tolerated and kept in `raw`). Fails, with a
// reason in `error`, on a continuation line before any field, a line
// without a colon, a field name with bytes outside 33..126, or more than
// max_header_fields fields.
std::optional<HeaderSection> parse_header_section(std::string_view message, std::string* error = nullptr);

// The header section as a mail reader, and a milter, takes it from a
// message received as it came: the fields up to the first line that is
// neither a field nor a continuation of one (or up to max_header_fields);
// that line and the rest are the body, with has_separator false. Never
// fails; a message that starts with such a line has no fields.
HeaderSection parse_header_section_leniently(std::string_view message);

// What a line that is no continuation is to the header parser: a field
// (its name in `name`: printable US-ASCII but the colon, RFC 5322 3.6.8,
// white space before the colon allowed as the obsolete syntax has it, RFC
// 5322 4.5.2), or why not.
enum class FieldLine { field, no_colon, empty_name, bad_name };

// Whether `name` is a field name (RFC 5322 3.6.8: printable US-ASCII but
// the colon, at least one).
bool is_field_name(std::string_view name);
FieldLine classify_field_line(std::string_view line, std::string_view* name = nullptr);

// Fields named `name` (case-insensitive), in message order.
std::vector<const HeaderField*> find_fields(const HeaderSection&, std::string_view name);

// RFC 5322 2.2.3 unfolding: removes every CR LF that is followed by WSP.
std::string unfold(std::string_view folded);

}  // namespace tern::message
