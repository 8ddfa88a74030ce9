#include "mailauth/mta_sts.h"

#include <algorithm>

#include "util/hex.h"
#include "util/strings.h"

namespace tern::mailauth::mta_sts {

namespace {


void set_error(std::string* error, std::string reason) {
	if (error) *error = std::move(reason);
}

// set_error for the functions that return an optional: `return fail(...)`.
std::nullopt_t fail(std::string* error, std::string reason) {
	set_error(error, std::move(reason));
	return std::nullopt;
}

// ---------------------------------------------------------------- TXT record

// RFC 8461 3.1: "v=STSv1;" opens the record; the WSP allowed around the
// delimiters elsewhere is accepted here too. Returns the position after the
// ';', or npos when the record is not an STS record.
size_t after_version(std::string_view txt) {
	size_t i = 0;
	auto skip_wsp = [&] {
		while (i < txt.size() && is_wsp(txt[i])) ++i;
	};
	auto take = [&](std::string_view s) {
		if (txt.substr(i, s.size()) != s) return false;
		i += s.size();
		return true;
	};
	if (!take("v")) return std::string_view::npos;
	skip_wsp();
	if (!take("=")) return std::string_view::npos;
	skip_wsp();
	if (!take("STSv1")) return std::string_view::npos;
	skip_wsp();
	if (!take(";")) return std::string_view::npos;
	return i;
}

// RFC 8461 3.1: sts-id = %s"id=" 1*32(ALPHA / DIGIT).
bool valid_id(std::string_view v) {
	if (v.empty() || v.size() > 32) return false;
	for (char c : v)
		if (!is_ascii_alnum(c)) return false;
	return true;
}

// RFC 8461 3.1 (and 3.2): ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").
bool valid_ext_name(std::string_view n) {
	if (n.empty() || n.size() > 32 || !is_ascii_alnum(n[0])) return false;
	for (char c : n)
		if (!is_ascii_alnum(c) && c != '_' && c != '-' && c != '.') return false;
	return true;
}

// RFC 8461 3.1: sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E), printable
// characters other than '=' and ';'.
bool valid_ext_value(std::string_view v) {
	if (v.empty()) return false;
	for (char c : v)
		if (c < 0x21 || c > 0x7e || c == '=' || c == ';') return false;
	return true;
}

// Parses the fields after "v=STSv1;". RFC 8461 3.1 ABNF: fields are
// separated by ';' with optional WSP, and one ';' may end the record.
std::optional<Record> parse_fields(std::string_view rest) {
	std::optional<std::string> id;
	auto fields = split(rest, ';');
	for (size_t i = 0; i < fields.size(); ++i) {
		std::string_view field = trim(fields[i]);
		if (field.empty()) {
			if (i + 1 == fields.size() && i > 0) continue;  // the optional final ';'
			return std::nullopt;
		}
		size_t eq = field.find('=');
		if (eq == std::string_view::npos) return std::nullopt;
		std::string_view name = trim(field.substr(0, eq));
		std::string_view value = trim(field.substr(eq + 1));
		if (name == "id") {
			if (!valid_id(value)) return std::nullopt;
			if (!id) id = std::string(value);
		} else if (!valid_ext_name(name) || !valid_ext_value(value)) {
			return std::nullopt;
		}
	}
	if (!id) return std::nullopt;
	return Record{*id};
}

// ---------------------------------------------------------------- policy

// RFC 8461 3.2: sts-policy-mx-value = ["*."] Domain, with Domain as in
// RFC 5321 4.1.2 (letters, digits and hyphens; a label neither starts nor
// ends with a hyphen). `pattern` is lower case without the trailing dot.
bool valid_mx_pattern(std::string_view pattern) {
	if (pattern.substr(0, 2) == "*.") pattern.remove_prefix(2);
	if (pattern.empty() || pattern.size() > max_dns_name_len) return false;
	for (std::string_view label : split(pattern, '.')) {
		if (label.empty() || label.size() > max_dns_label_len) return false;
		if (label.front() == '-' || label.back() == '-') return false;
		for (char c : label)
			if (!is_ascii_alnum(c) && c != '-') return false;
	}
	return true;
}

// RFC 8461 4.1: "*.example.com" stands for exactly one more label, the
// leftmost: "mx.example.com" but neither "example.com" nor "a.b.example.com".
bool wildcard_matches(std::string_view pattern, std::string_view name) {
	if (pattern.size() <= 2 || pattern.substr(0, 2) != "*.") return false;
	size_t dot = name.find('.');
	return dot != std::string_view::npos && dot > 0 && name.substr(dot + 1) == pattern.substr(2);
}

struct PolicyFields {
	std::optional<std::string_view> version, mode, max_age;
	std::vector<std::string_view> mx;
};

// Splits the body into "key: value" lines. RFC 8461 3.2: lines end in LF or
// CRLF; the last may lack it.
bool collect_fields(std::string_view body, PolicyFields& f, std::string* error) {
	for (std::string_view line : split(body, '\n')) {
		if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
		if (trim(line).empty()) continue;
		size_t colon = line.find(':');
		if (colon == std::string_view::npos) {
			set_error(error, "policy line without a colon");
			return false;
		}
		std::string_view key = trim(line.substr(0, colon));
		std::string_view value = trim(line.substr(colon + 1));
		if (key == "mx") {
			f.mx.push_back(value);
			continue;
		}
		// mx repeats by design (RFC 8461 3.2); for the other keys the first
		// occurrence counts and later ones are ignored.
		std::optional<std::string_view>* slot = nullptr;
		if (key == "version") slot = &f.version;
		if (key == "mode") slot = &f.mode;
		if (key == "max_age") slot = &f.max_age;
		if (slot && !*slot) *slot = value;
	}
	return true;
}

// RFC 8461 3.2: max_age = 1*10(DIGIT), at most 31557600 (about a year).
std::optional<int64_t> parse_max_age(std::string_view v) {
	if (v.empty() || v.size() > 10) return std::nullopt;
	int64_t n = 0;
	for (char c : v) {
		if (!is_ascii_digit(c)) return std::nullopt;
		n = n * 10 + (c - '0');
	}
	constexpr int64_t max_max_age = 31557600;
	return std::min(n, max_max_age);
}

// ---------------------------------------------------------------- HTTP

// The next line of `raw` from `pos` without its LF and a CR before it
// (RFC 9112 2.2: a recipient may take a bare LF as the line end); nullopt
// when no LF follows, i.e. the line is not complete yet.
std::optional<std::string_view> next_line(std::string_view raw, size_t& pos) {
	size_t lf = raw.find('\n', pos);
	if (lf == std::string_view::npos) return std::nullopt;
	std::string_view line = raw.substr(pos, lf - pos);
	if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
	pos = lf + 1;
	return line;
}

enum class Framing { to_close, length, chunked, invalid };

struct HttpHead {
	int status = 0;
	std::optional<std::string> content_type;
	std::string content_encoding;
	Framing framing = Framing::to_close;
	uint64_t content_length = 0;
	std::string framing_error;  // why the framing is invalid
	size_t body_start = 0;
};

enum class HeadState { ok, incomplete, malformed };

// RFC 9112 4: status-line = HTTP-version SP status-code SP [reason-phrase];
// a missing SP after the code is accepted too.
std::optional<int> parse_status_line(std::string_view line) {
	if (line.size() < 12 || line.substr(0, 7) != "HTTP/1.") return std::nullopt;
	if (!is_ascii_digit(line[7]) || line[8] != ' ') return std::nullopt;
	if (!is_ascii_digit(line[9]) || !is_ascii_digit(line[10]) || !is_ascii_digit(line[11])) return std::nullopt;
	if (line.size() > 12 && line[12] != ' ') return std::nullopt;
	return (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
}

// RFC 9110 8.6: Content-Length = 1*DIGIT; a list of identical values (from
// repeated fields or commas) counts as one, differing values are an error.
bool add_content_length(HttpHead& h, std::string_view value, bool& seen) {
	for (std::string_view part : split(value, ',')) {
		part = trim(part);
		if (part.empty() || part.size() > 18) return false;
		uint64_t n = 0;
		for (char c : part) {
			if (!is_ascii_digit(c)) return false;
			n = n * 10 + static_cast<uint64_t>(c - '0');
		}
		if (seen && n != h.content_length) return false;
		h.content_length = n;
		seen = true;
	}
	return true;
}

// Reads the header fields into `fields`, joining obsolete folded lines
// (RFC 9112 5.2) to the field before. `pos` ends after the empty line.
HeadState read_fields(std::string_view raw, size_t& pos, std::vector<std::pair<std::string, std::string>>& fields) {
	for (;;) {
		auto line = next_line(raw, pos);
		if (!line) return HeadState::incomplete;
		if (line->empty()) return HeadState::ok;
		if (is_wsp(line->front())) {
			if (fields.empty()) return HeadState::malformed;
			fields.back().second += ' ';
			fields.back().second += trim(*line);
			continue;
		}
		size_t colon = line->find(':');
		if (colon == std::string_view::npos) return HeadState::malformed;
		std::string_view name = trim(line->substr(0, colon));
		if (name.empty()) return HeadState::malformed;
		fields.emplace_back(ascii_lower(name), std::string(trim(line->substr(colon + 1))));
	}
}

// Settles the body framing from the fields (RFC 9112 6.3): a
// Transfer-Encoding wins over Content-Length; only "chunked" alone can be
// read, as any other coding would leave the body encoded.
void apply_fields(HttpHead& h, const std::vector<std::pair<std::string, std::string>>& fields) {
	std::string transfer_encoding;
	bool has_te = false, has_length = false, bad_length = false;
	for (const auto& [name, value] : fields) {
		if (name == "content-type") {
			if (!h.content_type) h.content_type = value;
		} else if (name == "content-encoding") {
			if (!h.content_encoding.empty()) h.content_encoding += ", ";
			h.content_encoding += value;
		} else if (name == "transfer-encoding") {
			if (has_te) transfer_encoding += ", ";
			transfer_encoding += value;
			has_te = true;
		} else if (name == "content-length") {
			if (!add_content_length(h, value, has_length)) bad_length = true;
		}
	}
	if (has_te && iequals(trim(transfer_encoding), "chunked")) {
		h.framing = Framing::chunked;
	} else if (has_te) {
		h.framing = Framing::invalid;
		h.framing_error = "unsupported Transfer-Encoding " + transfer_encoding;
	} else if (bad_length) {
		h.framing = Framing::invalid;
		h.framing_error = "bad Content-Length";
	} else if (has_length) {
		h.framing = Framing::length;
	}
}

// Reads one response head (status line and fields) from `pos`.
HeadState read_one_head(std::string_view raw, size_t pos, HttpHead& h) {
	auto status_line = next_line(raw, pos);
	if (!status_line) {
		// A status line already known to be wrong need not wait for its LF.
		if (raw.size() - pos >= 12 && !parse_status_line(raw.substr(pos, 12))) return HeadState::malformed;
		return HeadState::incomplete;
	}
	auto status = parse_status_line(*status_line);
	if (!status) return HeadState::malformed;
	std::vector<std::pair<std::string, std::string>> fields;
	HeadState state = read_fields(raw, pos, fields);
	if (state != HeadState::ok) return state;
	h = HttpHead();
	h.status = *status;
	h.body_start = pos;
	apply_fields(h, fields);
	return HeadState::ok;
}

// The final response's head: interim 1xx responses (RFC 9110 15.2) carry no
// body and are skipped; 101 would switch protocols and is taken as final.
HeadState read_head(std::string_view raw, HttpHead& h) {
	size_t pos = 0;
	for (;;) {
		HeadState state = read_one_head(raw, pos, h);
		if (state != HeadState::ok) return state;
		if (h.status < 100 || h.status > 199 || h.status == 101) return HeadState::ok;
		pos = h.body_start;
	}
}

enum class ChunkState { done, truncated, bad_size, bad_chunk };

struct Dechunked {
	ChunkState state = ChunkState::truncated;
	std::string body;
	bool trailers_ended = false;  // the empty line after the trailer fields was read
};

// RFC 9112 7.1: chunk-size = 1*HEXDIG, then optional BWS and chunk-ext.
std::optional<uint64_t> parse_chunk_size(std::string_view line) {
	uint64_t n = 0;
	size_t i = 0;
	for (; i < line.size(); ++i) {
		int d = hex_digit_value(line[i]);
		if (d < 0) break;
		if (i == 15) return std::nullopt;  // beyond any sane body, and no overflow
		n = n * 16 + static_cast<uint64_t>(d);
	}
	if (i == 0) return std::nullopt;
	std::string_view rest = trim(line.substr(i));
	if (!rest.empty() && rest.front() != ';') return std::nullopt;
	return n;
}

// Skips the trailer section (RFC 9112 7.1.2: trailer fields may be ignored).
void skip_trailers(std::string_view raw, size_t pos, Dechunked& d) {
	for (;;) {
		auto line = next_line(raw, pos);
		if (!line) return;
		if (line->empty()) {
			d.trailers_ended = true;
			return;
		}
	}
}

// RFC 9112 7.1: decodes the chunked body that starts at `pos`.
Dechunked dechunk(std::string_view raw, size_t pos) {
	Dechunked d;
	for (;;) {
		auto size_line = next_line(raw, pos);
		if (!size_line) return d;
		auto size = parse_chunk_size(*size_line);
		if (!size) {
			d.state = ChunkState::bad_size;
			return d;
		}
		if (*size == 0) {
			d.state = ChunkState::done;
			skip_trailers(raw, pos, d);
			return d;
		}
		if (*size > raw.size() - pos) return d;
		d.body += raw.substr(pos, *size);
		pos += *size;
		std::string_view after = raw.substr(pos, 2);
		if (after.empty() || after == "\r") return d;
		if (after[0] != '\n' && after != "\r\n") {
			d.state = ChunkState::bad_chunk;
			return d;
		}
		pos += after[0] == '\n' ? 1 : 2;
	}
}

// RFC 8461 3.3: the policy is served as text/plain; parameters such as
// charset do not matter.
bool is_text_plain(std::string_view content_type) {
	std::string_view media_type = content_type.substr(0, content_type.find(';'));
	return iequals(trim(media_type), "text/plain");
}

// The checks on a parsed head before the body is read.
bool head_acceptable(const HttpHead& h, std::string* error) {
	if (h.status != 200) {
		set_error(error, "HTTP status " + std::to_string(h.status));
		return false;
	}
	if (!h.content_type) {
		set_error(error, "no Content-Type");
		return false;
	}
	if (!is_text_plain(*h.content_type)) {
		set_error(error, "Content-Type " + *h.content_type + " is not text/plain");
		return false;
	}
	if (!h.content_encoding.empty() && !iequals(trim(h.content_encoding), "identity")) {
		set_error(error, "unsupported Content-Encoding " + h.content_encoding);
		return false;
	}
	if (h.framing == Framing::invalid) {
		set_error(error, h.framing_error);
		return false;
	}
	return true;
}

}  // namespace

std::optional<Record> pick_record(const std::vector<std::string>& txt_records) {
	const std::string* found = nullptr;
	for (const auto& txt : txt_records) {
		if (after_version(txt) == std::string_view::npos) continue;
		if (found) return std::nullopt;  // RFC 8461 3.1: more than one STS record
		found = &txt;
	}
	if (!found) return std::nullopt;
	std::string_view txt = *found;
	return parse_fields(txt.substr(after_version(txt)));
}

const char* mode_name(Mode mode) {
	switch (mode) {
	case Mode::enforce: return "enforce";
	case Mode::testing: return "testing";
	case Mode::none: return "none";
	}
	return "none";
}

std::optional<Mode> mode_from_name(std::string_view name) {
	if (name == "enforce") return Mode::enforce;
	if (name == "testing") return Mode::testing;
	if (name == "none") return Mode::none;
	return std::nullopt;
}

std::optional<Policy> parse_policy(std::string_view body, std::string* error) {
	PolicyFields f;
	if (!collect_fields(body, f, error)) return std::nullopt;
	if (!f.version) return fail(error, "no version");
	if (*f.version != "STSv1") return fail(error, "version is not STSv1");
	if (!f.mode) return fail(error, "no mode");
	Policy p;
	auto mode = mode_from_name(*f.mode);
	if (!mode) return fail(error, "unknown mode \"" + std::string(*f.mode) + "\"");
	p.mode = *mode;
	if (!f.max_age) return fail(error, "no max_age");
	auto max_age = parse_max_age(*f.max_age);
	if (!max_age) return fail(error, "bad max_age \"" + std::string(*f.max_age) + "\"");
	p.max_age = *max_age;
	// D43: a policy is kept for up to a year and its patterns are matched
	// on the loop for every MX host; real ones list a handful.
	if (f.mx.size() > max_mx_patterns)
		return fail(error, "more than " + std::to_string(max_mx_patterns) + " mx patterns");
	for (std::string_view mx : f.mx) {
		std::string pattern = canonical_dns_name(mx);
		if (!valid_mx_pattern(pattern)) return fail(error, "bad mx \"" + std::string(mx) + "\"");
		p.mx.push_back(std::move(pattern));
	}
	// RFC 8461 3.2: mx is required except in mode none, which lists no hosts.
	if (p.mx.empty() && p.mode != Mode::none) return fail(error, "no mx");
	return p;
}

bool mx_matches(const Policy& policy, std::string_view host) {
	std::string name = canonical_dns_name(host);
	if (name.empty()) return false;
	for (const auto& mx : policy.mx) {
		std::string pattern = canonical_dns_name(mx);
		if (pattern == name || wildcard_matches(pattern, name)) return true;
	}
	return false;
}

std::optional<std::string> policy_body_from_http(std::string_view raw, std::string* error) {
	HttpHead h;
	HeadState state = read_head(raw, h);
	if (state == HeadState::malformed) return fail(error, "malformed HTTP response head");
	if (state == HeadState::incomplete) return fail(error, "truncated HTTP response head");
	if (!head_acceptable(h, error)) return std::nullopt;
	std::string_view rest = raw.substr(h.body_start);
	if (h.framing == Framing::to_close) return std::string(rest);
	if (h.framing == Framing::length) {
		if (h.content_length > rest.size()) return fail(error, "truncated body");
		return std::string(rest.substr(0, h.content_length));
	}
	// A missing end of the trailers is forgiven: the body itself is whole.
	Dechunked d = dechunk(raw, h.body_start);
	switch (d.state) {
	case ChunkState::done: return std::move(d.body);
	case ChunkState::truncated: return fail(error, "truncated body");
	case ChunkState::bad_size: return fail(error, "bad chunk size");
	case ChunkState::bad_chunk: return fail(error, "bad chunk end");
	}
	return std::nullopt;
}

bool http_response_complete(std::string_view raw) {
	HttpHead h;
	if (read_head(raw, h) != HeadState::ok) return false;
	// RFC 9112 6.3: 204 and 304 responses end with their head.
	if (h.status == 204 || h.status == 304) return true;
	switch (h.framing) {
	case Framing::length: return raw.size() - h.body_start >= h.content_length;
	case Framing::chunked: {
		Dechunked d = dechunk(raw, h.body_start);
		return d.state == ChunkState::done && d.trailers_ended;
	}
	case Framing::to_close:
	case Framing::invalid: return false;
	}
	return false;
}

}  // namespace tern::mailauth::mta_sts
