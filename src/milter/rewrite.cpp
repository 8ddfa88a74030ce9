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
	return name + ":" + (leading_space ? "" : " ") + to_crlf(value) + "\r\n";
}

struct Field {
	std::string name;
	std::string raw;  // with its final CRLF
};

}  // namespace

MessageParts split_message(std::string_view message) {
	MessageParts parts;
	auto section = message::parse_header_section(message);
	if (!section) return parts;  // unparsable: no fields, everything is body
	parts.body_offset = section->body_offset;
	for (const auto& f : section->fields) {
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
	size_t body_offset = 0;
	bool separator = false;
	if (auto section = message::parse_header_section(message)) {
		for (const auto& f : section->fields) fields.push_back({f.name, f.raw});
		body_offset = section->body_offset;
		separator = section->has_separator;
	}
	std::string body(message.substr(body_offset));
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
	// The empty line between header and body (RFC 5322 2.1).
	if (separator || !body.empty()) out += "\r\n";
	out += body;
	return out;
}

}  // namespace tern::milter
