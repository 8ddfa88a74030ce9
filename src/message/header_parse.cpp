#include "message/header_parse.h"

#include "util/strings.h"

namespace tern::message {

std::string_view HeaderField::value() const {
	std::string_view r = raw;
	size_t colon = r.find(':');
	return colon == std::string_view::npos ? std::string_view{} : r.substr(colon + 1);
}

std::string HeaderField::unfolded_value() const {
	std::string v = unfold(value());
	while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
	return std::string(trim(v));
}

std::string unfold(std::string_view folded) {
	std::string out;
	out.reserve(folded.size());
	for (size_t i = 0; i < folded.size(); i++) {
		char c = folded[i];
		// RFC 5322 2.2.3: "unfolding is accomplished by simply removing any
		// CRLF that is immediately followed by WSP". A bare LF counts too.
		if (c == '\r' && i + 2 < folded.size() && folded[i + 1] == '\n' &&
		    (folded[i + 2] == ' ' || folded[i + 2] == '\t')) {
			i++;
			continue;
		}
		if (c == '\n' && i + 1 < folded.size() && (folded[i + 1] == ' ' || folded[i + 1] == '\t')) continue;
		out += c;
	}
	return out;
}

FieldLine classify_field_line(std::string_view line, std::string_view* name_out) {
	size_t colon = line.find(':');
	if (colon == std::string_view::npos) return FieldLine::no_colon;
	std::string_view name = line.substr(0, colon);
	while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
	if (name.empty()) return FieldLine::empty_name;
	if (!is_field_name(name)) return FieldLine::bad_name;
	if (name_out) *name_out = name;
	return FieldLine::field;
}

bool is_field_name(std::string_view name) {
	if (name.empty()) return false;
	for (unsigned char c : name) {
		// RFC 5322 3.6.8: ftext is printable US-ASCII except colon.
		if (c <= ' ' || c >= 0x7f || c == ':') return false;
	}
	return true;
}

namespace {

// The header parser; `lenient` ends the section at a line that is no
// field (see parse_header_section_leniently) where the strict one fails.
std::optional<HeaderSection> read_header_section(std::string_view message, bool lenient, std::string* error) {
	HeaderSection section;
	size_t pos = 0;
	auto fail = [&](const char* why) -> std::optional<HeaderSection> {
		if (lenient) {
			section.body_offset = pos;
			return section;
		}
		if (error) *error = why;
		return std::nullopt;
	};
	while (pos < message.size()) {
		size_t nl = message.find('\n', pos);
		size_t end = nl == std::string_view::npos ? message.size() : nl + 1;
		std::string_view line = message.substr(pos, end - pos);
		if (line == "\r\n" || line == "\n") {
			section.body_offset = end;
			section.has_separator = true;
			return section;
		}
		if (line[0] == ' ' || line[0] == '\t') {
			// RFC 5322 2.2.3: a continuation line belongs to the field above.
			if (section.fields.empty()) return fail("malformed message, starts with space/tab");
			section.fields.back().raw.append(line);
			pos = end;
			continue;
		}
		std::string_view name;
		switch (classify_field_line(line, &name)) {
		case FieldLine::field: break;
		case FieldLine::no_colon: return fail("malformed message, header without colon");
		case FieldLine::empty_name: return fail("empty header key");
		case FieldLine::bad_name: return fail("invalid header field name");
		}
		if (section.fields.size() == max_header_fields) return fail("too many header fields");
		HeaderField field;
		field.name = std::string(name);
		field.lower_name = ascii_lower(name);
		field.raw = std::string(line);
		section.fields.push_back(std::move(field));
		pos = end;
	}
	// Header only, no empty line: the body is empty.
	section.body_offset = message.size();
	return section;
}

}  // namespace

std::optional<HeaderSection> parse_header_section(std::string_view message, std::string* error) {
	return read_header_section(message, false, error);
}

HeaderSection parse_header_section_leniently(std::string_view message) {
	return *read_header_section(message, true, nullptr);
}

std::vector<const HeaderField*> find_fields(const HeaderSection& section, std::string_view name) {
	std::vector<const HeaderField*> out;
	for (const HeaderField& f : section.fields)
		if (iequals(f.lower_name, name)) out.push_back(&f);
	return out;
}

}  // namespace tern::message
