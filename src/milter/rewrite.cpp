// Header and body changes of milters applied to a message (see rewrite.h).
#include "milter/rewrite.h"

#include "message/header_parse.h"
#include "util/strings.h"

namespace tern::milter {

namespace {

std::string field_text(const std::string& name, const std::string& value) {
	// The milter gives the value without the space after the colon
	// (unless it starts with whitespace of its own), and folds it with LF
	// only: each line end becomes CRLF (RFC 5322 2.1).
	bool leading_space = !value.empty() && (value[0] == ' ' || value[0] == '\t');
	std::string crlf = to_crlf(value);
	while (crlf.ends_with("\r\n")) crlf.resize(crlf.size() - 2);
	// Every line break must be a fold (RFC 5322 2.2.3): one without white
	// space after it would end the field, and a value taken from the
	// message (a subject) could then add fields or end the header section.
	// Such a break gets a tab after it.
	std::string folded;
	folded.reserve(crlf.size());
	for (size_t i = 0; i < crlf.size(); ++i) {
		folded += crlf[i];
		if (crlf[i] == '\n' && i + 1 < crlf.size() && crlf[i + 1] != ' ' && crlf[i + 1] != '\t') folded += '\t';
	}
	return name + ":" + (leading_space ? "" : " ") + folded + "\r\n";
}

struct Field {
	std::string name;
	std::string raw;  // with its final CRLF
};

}  // namespace

MessageParts split_message(std::string_view message) {
	MessageParts parts;
	// The fields up to a line that is none are the header, the rest the
	// body, as Postfix's cleanup gives them to its milters: one bad line
	// must not hide every field from a filter.
	message::HeaderSection section = message::parse_header_section_leniently(message);
	parts.body_offset = section.body_offset;
	for (const auto& f : section.fields) {
		std::string_view v = f.value();
		while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.remove_suffix(1);
		while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
		std::string value;
		for (size_t i = 0; i < v.size(); ++i)
			if (!(v[i] == '\r' && i + 1 < v.size() && v[i + 1] == '\n')) value.push_back(v[i]);
		parts.headers.emplace_back(f.name, std::move(value));
	}
	return parts;
}

bool changes_message(const std::vector<Modification>& mods) {
	for (const auto& m : mods)
		if (m.kind == Modification::Kind::add_header || m.kind == Modification::Kind::insert_header ||
		    m.kind == Modification::Kind::change_header || m.kind == Modification::Kind::replace_body)
			return true;
	return false;
}

std::string apply_modifications(std::string_view message, const std::vector<Modification>& mods) {
	std::vector<Field> fields;
	message::HeaderSection section = message::parse_header_section_leniently(message);
	for (const auto& f : section.fields) fields.push_back({f.name, f.raw});
	// A message that starts with a line that is no field has no header
	// section: all of it is body, stored after an empty line as the ports
	// store such data (doc/behaviour.md §9), also when a milter adds fields.
	bool separator = section.has_separator || (section.fields.empty() && section.body_offset < message.size());
	std::string body(message.substr(section.body_offset));
	for (const auto& m : mods) {
		using K = Modification::Kind;
		switch (m.kind) {
		case K::add_header: fields.push_back({m.name, field_text(m.name, m.value)}); break;
		case K::insert_header: {
			size_t at = std::min<size_t>(m.index, fields.size());
			fields.insert(fields.begin() + static_cast<std::ptrdiff_t>(at),
			              Field{m.name, field_text(m.name, m.value)});
			break;
		}
		case K::change_header: {
			uint32_t seen = 0;
			bool found = false;
			for (auto it = fields.begin(); it != fields.end(); ++it) {
				if (!iequals(it->name, m.name) || ++seen != std::max<uint32_t>(m.index, 1)) continue;
				found = true;
				if (m.value.empty())
					fields.erase(it);
				else
					it->raw = field_text(it->name, m.value);
				break;
			}
			if (!found && !m.value.empty()) fields.push_back({m.name, field_text(m.name, m.value)});
			break;
		}
		case K::replace_body:
			body = to_crlf(m.value);  // bare LFs and CRs, as the ports store them
			separator = true;
			break;
		default: break;
		}
	}
	std::string out;
	out.reserve(message.size() + 256);
	for (const auto& f : fields) out += f.raw;
	// The empty line between header and body (RFC 5322 2.1), where the
	// message had one, had no header or the body is new. A header that
	// ended at a line that is no field goes on with that line as it came:
	// an empty line put before it would make the fields after it body.
	if (separator) out += "\r\n";
	out += body;
	return out;
}

}  // namespace tern::milter
