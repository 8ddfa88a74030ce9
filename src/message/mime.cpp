#include "message/mime.h"

#include <iconv.h>

#include <cctype>
#include <cerrno>

#include "message/header_parse.h"
#include "util/base64.h"
#include "util/strings.h"

namespace tern::message {

namespace {

int hex_value(char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	return -1;
}

// Parameters after the first ';' of a Content-Type or Content-Disposition.
std::vector<std::pair<std::string, std::string>> parse_params(std::string_view s) {
	std::vector<std::pair<std::string, std::string>> out;
	size_t i = 0;
	while (i < s.size()) {
		if (s[i] != ';') {
			++i;
			continue;
		}
		++i;
		size_t eq = s.find('=', i);
		if (eq == std::string_view::npos) break;
		std::string name = ascii_lower(trim(s.substr(i, eq - i)));
		i = eq + 1;
		while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
		std::string value;
		if (i < s.size() && s[i] == '"') {
			for (++i; i < s.size() && s[i] != '"'; ++i) {
				if (s[i] == '\\' && i + 1 < s.size()) ++i;
				value += s[i];
			}
			if (i < s.size()) ++i;
		} else {
			size_t end = s.find(';', i);
			value = std::string(trim(s.substr(i, end == std::string_view::npos ? s.size() - i : end - i)));
			i = end == std::string_view::npos ? s.size() : end;
		}
		if (!name.empty()) out.emplace_back(std::move(name), std::move(value));
	}
	return out;
}

std::string field_value(const HeaderSection& h, std::string_view name) {
	auto fields = find_fields(h, name);
	return fields.empty() ? std::string() : fields.front()->unfolded_value();
}

struct Walker {
	const std::function<void(const MimePart&)>& visit;
	const MimeLimits& limits;
	size_t parts = 0;

	void walk(std::string_view entity, int depth) {
		if (parts >= limits.max_parts) return;
		auto header = parse_header_section(entity);
		HeaderSection h = header ? *header : HeaderSection{};
		std::string_view body = header ? entity.substr(h.body_offset) : entity;
		std::string ct_value = field_value(h, "Content-Type");
		ContentType ct = ct_value.empty() ? ContentType{} : parse_content_type(ct_value);
		if (ct.type == "multipart" && depth < limits.max_depth) {
			std::string boundary = ct.param("boundary");
			if (!boundary.empty()) {
				for (std::string_view sub : split_multipart(body, boundary)) walk(sub, depth + 1);
				return;
			}
		}
		if (ct.type == "message" && ct.subtype == "rfc822" && depth < limits.max_depth) {
			walk(body, depth + 1);
			return;
		}
		MimePart part;
		part.content_type = std::move(ct);
		std::string disposition = field_value(h, "Content-Disposition");
		for (auto& [k, v] : parse_params(disposition))
			if (k == "filename") part.filename = v;
		if (part.filename.empty()) part.filename = part.content_type.param("name");
		std::string cte = ascii_lower(trim(field_value(h, "Content-Transfer-Encoding")));
		if (cte == "base64")
			part.body = decode_base64_lenient(body);
		else if (cte == "quoted-printable")
			part.body = decode_quoted_printable(body);
		else
			part.body = std::string(body);
		++parts;
		visit(part);
	}

	// The body parts between "--boundary" lines (RFC 2046 5.1.1); the CRLF
	// before a delimiter belongs to the delimiter.
	static std::vector<std::string_view> split_multipart(std::string_view body, const std::string& boundary) {
		std::vector<std::string_view> out;
		std::string delim = "--" + boundary;
		size_t pos = 0;
		std::optional<size_t> start;
		while (pos <= body.size()) {
			size_t eol = body.find('\n', pos);
			std::string_view line = body.substr(
			    pos, eol == std::string_view::npos ? body.size() - pos : eol - pos);
			if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
			if (line.substr(0, delim.size()) == delim) {
				std::string_view rest = trim(line.substr(delim.size()));
				if (start) {
					size_t end = pos;
					if (end > *start && body[end - 1] == '\n') --end;
					if (end > *start && body[end - 1] == '\r') --end;
					out.push_back(body.substr(*start, end - *start));
				}
				if (rest.substr(0, 2) == "--") return out;  // close delimiter
				start = eol == std::string_view::npos ? body.size() : eol + 1;
			}
			if (eol == std::string_view::npos) break;
			pos = eol + 1;
		}
		if (start && *start < body.size()) out.push_back(body.substr(*start));  // unterminated
		return out;
	}
};

}  // namespace

std::string ContentType::param(std::string_view name) const {
	for (const auto& [k, v] : params)
		if (k == name) return v;
	return "";
}

ContentType parse_content_type(std::string_view value) {
	ContentType ct;
	size_t semi = value.find(';');
	std::string_view mt = trim(value.substr(0, semi));
	size_t slash = mt.find('/');
	if (slash != std::string_view::npos && slash > 0 && slash + 1 < mt.size()) {
		ct.type = ascii_lower(trim(mt.substr(0, slash)));
		ct.subtype = ascii_lower(trim(mt.substr(slash + 1)));
	}
	if (semi != std::string_view::npos) ct.params = parse_params(value.substr(semi));
	return ct;
}

void walk_mime(std::string_view message, const std::function<void(const MimePart&)>& visit, const MimeLimits& limits) {
	Walker w{visit, limits};
	w.walk(message, 0);
}

std::string decode_quoted_printable(std::string_view text) {
	std::string out;
	out.reserve(text.size());
	for (size_t i = 0; i < text.size(); ++i) {
		char c = text[i];
		if (c != '=') {
			out += c;
			continue;
		}
		// Soft line break: '=' then optional white space, then a line end.
		size_t j = i + 1;
		while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
		if (j < text.size() && (text[j] == '\r' || text[j] == '\n')) {
			if (text[j] == '\r' && j + 1 < text.size() && text[j + 1] == '\n') ++j;
			i = j;
			continue;
		}
		if (j == text.size()) {
			i = j;
			continue;
		}
		int hi = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
		int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			out += c;
			continue;
		}
		out += static_cast<char>(hi * 16 + lo);
		i += 2;
	}
	return out;
}

std::string decode_base64_lenient(std::string_view text) {
	static const std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	std::string out;
	uint32_t acc = 0;
	int bits = 0;
	for (char c : text) {
		if (c == '=') break;
		size_t v = alphabet.find(c);
		if (v == std::string_view::npos) continue;
		acc = (acc << 6) | static_cast<uint32_t>(v);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out += static_cast<char>((acc >> bits) & 0xff);
		}
	}
	return out;
}

std::string to_utf8(std::string_view text, std::string_view charset) {
	std::string cs = ascii_lower(trim(charset));
	if (cs.empty() || cs == "utf-8" || cs == "utf8" || cs == "us-ascii" || cs == "ascii") return std::string(text);
	iconv_t cd = iconv_open("UTF-8", cs.c_str());
	if (cd == reinterpret_cast<iconv_t>(-1)) return std::string(text);
	// Converted a buffer at a time, so the result takes what it needs: a
	// buffer for the worst case (4 bytes per input byte) would hold four
	// times the junk filter's 8 MiB read for every large text part.
	std::string out;
	out.reserve(text.size() + 16);
	char buffer[16384];
	char* in = const_cast<char*>(text.data());
	size_t in_left = text.size();
	while (in_left > 0) {
		char* o = buffer;
		size_t out_left = sizeof buffer;
		size_t rc = iconv(cd, &in, &in_left, &o, &out_left);
		out.append(buffer, static_cast<size_t>(o - buffer));
		if (rc != static_cast<size_t>(-1)) break;
		if (errno == E2BIG) continue;              // the buffer is full: go on with the next
		if (errno == EILSEQ || errno == EINVAL) {  // drop the byte, go on
			++in;
			--in_left;
			continue;
		}
		break;
	}
	iconv_close(cd);
	return out;
}

std::string encode_words(std::string_view utf8) {
	// 42 bytes are 56 base64 characters, the word "=?UTF-8?B?…?=" 68.
	constexpr size_t max_bytes_per_word = 42;
	std::string out;
	while (!utf8.empty()) {
		size_t take = 0;
		while (take < utf8.size()) {
			const size_t len = decode_utf8(utf8.substr(take)).len;
			if (take + len > max_bytes_per_word) break;
			take += len;
		}
		if (!out.empty()) out += "\r\n ";
		out += "=?UTF-8?B?" + base64_encode(utf8.substr(0, take)) + "?=";
		utf8.remove_prefix(take);
	}
	return out;
}

std::string decode_encoded_words(std::string_view value) {
	std::string out;
	size_t i = 0;
	bool last_was_word = false;
	std::string pending_space;
	// The closing "?=" is looked for from positions that only grow (q2
	// grows with i), so a search's answer holds for later ones up to it:
	// without that, every "=?" of a value with no "?=" after it scanned to
	// the end, quadratic in a long Subject.
	size_t close_from = 0, close_at = value.find("?=");
	auto closing_after = [&](size_t from) {
		if (from < close_from || (close_at != std::string_view::npos && from > close_at))
			close_at = value.find("?=", from);
		close_from = from;
		return close_at;
	};
	while (i < value.size()) {
		if (value.substr(i, 2) == "=?") {
			// =?charset?Q|B?text?=
			size_t q1 = value.find('?', i + 2);
			size_t q2 = q1 == std::string_view::npos ? q1 : value.find('?', q1 + 1);
			size_t end = q2 == std::string_view::npos || q2 != q1 + 2 ? std::string_view::npos
										  : closing_after(q2 + 1);
			if (end != std::string_view::npos) {
				std::string charset(value.substr(i + 2, q1 - i - 2));
				size_t star = charset.find('*');  // RFC 2231 language suffix
				if (star != std::string::npos) charset.resize(star);
				char enc = static_cast<char>(std::toupper(static_cast<unsigned char>(value[q1 + 1])));
				std::string_view text = value.substr(q2 + 1, end - q2 - 1);
				std::string raw;
				if (enc == 'B')
					raw = decode_base64_lenient(text);
				else if (enc == 'Q') {
					std::string t(text);
					for (char& c : t)
						if (c == '_') c = ' ';
					raw = decode_quoted_printable(t);
				}
				if (enc == 'B' || enc == 'Q') {
					if (!last_was_word) out += pending_space;
					pending_space.clear();
					out += to_utf8(raw, charset);
					last_was_word = true;
					i = end + 2;
					continue;
				}
			}
		}
		char c = value[i++];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			pending_space += c == '\r' || c == '\n' ? ' ' : c;
			continue;
		}
		out += pending_space;
		pending_space.clear();
		out += c;
		last_was_word = false;
	}
	out += pending_space;
	return out;
}

}  // namespace tern::message
