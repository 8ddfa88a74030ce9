// Submission-path message helpers, see submission.h.
#include "util/random.h"
#include "message/submission.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <vector>

#include "message/headers.h"
#include "util/base64.h"
#include "util/failed.h"

namespace tern::message {

namespace {

bool is_space_or_line_end(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// RFC 5322 3.2.3 atext, plus every non-ASCII byte (RFC 6532 3.2: UTF-8 is
// allowed wherever atext is).
bool is_atext(char ch) {
	unsigned char c = static_cast<unsigned char>(ch);
	if (c >= 0x80) return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
	return std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr && c != 0;
}

// One word of a phrase or local-part: an atom, a quoted string (content
// with quoted-pairs resolved) or a lone dot (obs-phrase, obs-local-part).
struct Word {
	enum Kind { atom, quoted, dot } kind;
	std::string text;
};

// A recursive-descent reader of an RFC 5322 3.4 address-list restricted to
// mailboxes (group syntax refused), on the unfolded field value. A step that
// meets a syntax error records it (`error()`) and returns Failed (false or
// an empty optional, util/failed.h); its caller returns at once.
class MailboxListReader {
public:
	explicit MailboxListReader(std::string_view text) : text_(text) {}

	struct Mailbox {
		std::string localpart;  // quotes and quoted-pairs removed
		std::string domain;     // dot-atom text as written
	};

	// The mailboxes, or nullopt with the syntax error in error().
	std::optional<std::vector<Mailbox>> read_all() {
		std::vector<Mailbox> out;
		for (;;) {
			if (!skip_cfws()) return Failed{};
			if (at_end()) break;
			// RFC 5322 4.4 obs-mbox-list: empty list elements are allowed.
			if (peek() == ',') {
				++pos_;
				continue;
			}
			std::optional<Mailbox> box = mailbox();
			if (!box || !skip_cfws()) return Failed{};
			out.push_back(std::move(*box));
			if (at_end()) break;
			if (peek() != ',') return fail("unexpected character " + describe_next() + " after address");
			++pos_;
		}
		return out;
	}

	const std::string& error() const { return error_; }

private:
	std::string_view text_;
	size_t pos_ = 0;
	std::string error_;

	bool at_end() const { return pos_ >= text_.size(); }
	char peek() const { return at_end() ? '\0' : text_[pos_]; }

	Failed fail(std::string what) {
		error_ = std::move(what);
		return {};
	}

	std::string describe_next() const {
		if (at_end()) return "end of header";
		return std::string("\"") + text_[pos_] + "\"";
	}

	// RFC 5322 3.2.2 CFWS: folding white space and (nested) comments.
	bool skip_cfws() {
		for (;;) {
			if (!at_end() && is_space_or_line_end(peek())) {
				++pos_;
			} else if (peek() == '(') {
				if (!skip_comment()) return false;
			} else {
				return true;
			}
		}
	}

	bool skip_comment() {
		int depth = 0;
		do {
			if (at_end()) return fail("unterminated comment");
			char c = text_[pos_++];
			if (c == '\\') {
				if (at_end()) return fail("unterminated comment");
				++pos_;
			} else if (c == '(') {
				++depth;
			} else if (c == ')') {
				--depth;
			}
		} while (depth > 0);
		return true;
	}

	// RFC 5322 3.2.4 quoted-string; returns the content with quoted-pairs
	// resolved. FWS inside is kept as written (already unfolded).
	std::optional<std::string> quoted_string() {
		++pos_;  // opening DQUOTE
		std::string out;
		for (;;) {
			if (at_end()) return fail("unterminated quoted string");
			char c = text_[pos_++];
			if (c == '"') return out;
			if (c == '\\') {
				if (at_end()) return fail("unterminated quoted string");
				c = text_[pos_++];
			}
			out += c;
		}
	}

	std::string atom() {
		size_t start = pos_;
		while (!at_end() && is_atext(peek())) ++pos_;
		return std::string(text_.substr(start, pos_ - start));
	}

	// Words up to the next special that is not a dot or a quote.
	std::optional<std::vector<Word>> words() {
		std::vector<Word> out;
		for (;;) {
			if (!skip_cfws()) return Failed{};
			if (peek() == '"') {
				std::optional<std::string> quoted = quoted_string();
				if (!quoted) return Failed{};
				out.push_back({Word::quoted, std::move(*quoted)});
			} else if (peek() == '.') {
				++pos_;
				out.push_back({Word::dot, "."});
			} else if (!at_end() && is_atext(peek())) {
				out.push_back({Word::atom, atom()});
			} else {
				return out;
			}
		}
	}

	// RFC 5322 3.4.1 local-part = dot-atom / quoted-string / obs-local-part
	// (word *("." word)): words and dots strictly alternating.
	std::optional<std::string> local_part_from(const std::vector<Word>& ws) {
		if (ws.empty()) return fail("missing localpart");
		std::string out;
		bool want_word = true;
		for (const Word& w : ws) {
			if ((w.kind == Word::dot) == want_word) return fail("malformed localpart");
			out += w.text;
			want_word = !want_word;
		}
		if (want_word) return fail("localpart ends with a dot");
		return out;
	}

	// RFC 5322 3.4.1 domain; a domain-literal is read but refused by the
	// caller (the model only takes DNS domains in From).
	std::optional<std::string> domain() {
		if (!skip_cfws()) return Failed{};
		std::string out;
		if (peek() == '[') {
			size_t start = pos_;
			while (!at_end() && peek() != ']') ++pos_;
			if (at_end()) return fail("unterminated domain literal");
			++pos_;
			return std::string(text_.substr(start, pos_ - start));
		}
		for (;;) {
			if (!skip_cfws()) return Failed{};
			std::string a = atom();
			if (a.empty()) return fail("missing domain");
			out += a;
			if (!skip_cfws()) return Failed{};
			if (peek() != '.') return out;
			++pos_;
			out += '.';
		}
	}

	// local-part "@" domain, after the words of the local-part and the "@".
	std::optional<Mailbox> addr_spec_from(const std::vector<Word>& ws) {
		std::optional<std::string> localpart = local_part_from(ws);
		if (!localpart) return Failed{};
		std::optional<std::string> dom = domain();
		if (!dom) return Failed{};
		return Mailbox{std::move(*localpart), std::move(*dom)};
	}

	// addr-spec inside angle brackets, with an RFC 5322 4.4 obs-route
	// ("@a,@b:") skipped.
	std::optional<Mailbox> angle_addr() {
		++pos_;  // '<'
		if (!skip_cfws()) return Failed{};
		if (peek() == '@' || peek() == ',') {
			while (!at_end() && peek() != ':' && peek() != '>') ++pos_;
			if (peek() != ':') return fail("malformed route in angle address");
			++pos_;
		}
		if (peek() == '>') return fail("empty angle address");
		std::optional<std::vector<Word>> ws = words();
		if (!ws || !skip_cfws()) return Failed{};
		if (peek() != '@') return fail("expected \"@\" in address, got " + describe_next());
		++pos_;
		std::optional<Mailbox> m = addr_spec_from(*ws);
		if (!m || !skip_cfws()) return Failed{};
		if (peek() != '>') return fail("expected \">\" after address, got " + describe_next());
		++pos_;
		return m;
	}

	std::optional<Mailbox> mailbox() {
		std::optional<std::vector<Word>> ws = words();
		if (!ws || !skip_cfws()) return Failed{};
		char c = peek();
		if (c == '<') return angle_addr();  // the words were the display name
		if (c == '@') {
			if (ws->empty()) return fail("missing localpart");
			++pos_;
			return addr_spec_from(*ws);
		}
		if (c == ':') return fail("group syntax not allowed");
		if (ws->empty()) return fail("unexpected character " + describe_next());
		return fail("address without \"@\"");
	}
};

}  // namespace

namespace {

// The one mailbox of a From field's value.
FromResult parse_from_field(const HeaderField& field) {
	FromResult r;
	const std::string value = field.unfolded_value();  // the reader keeps a view of it
	MailboxListReader reader(value);
	std::optional<std::vector<MailboxListReader::Mailbox>> read = reader.read_all();
	if (!read) {
		r.error = "malformed from header: " + reader.error();
		return r;
	}
	std::vector<MailboxListReader::Mailbox>& boxes = *read;
	if (boxes.size() != 1) {
		r.error = "from header does not have exactly one address: " + std::to_string(boxes.size()) +
		    " addresses";
		return r;
	}
	const MailboxListReader::Mailbox& box = boxes[0];
	std::optional<smtp::Domain> domain;
	if (!box.domain.starts_with('[')) domain = smtp::parse_header_domain(box.domain);
	if (!domain) {
		r.error = "bad domain in from address: " + box.domain;
		return r;
	}
	// Check the localpart with the SMTP grammar (RFC 5321 4.1.2, RFC 6531
	// 3.3): the address must be usable as a reverse path and for account
	// lookup. Address::to_ascii_string quotes it where needed.
	smtp::Address candidate;
	candidate.localpart = box.localpart;
	candidate.domain = *domain;
	std::optional<smtp::Address> checked = smtp::parse_header_address(candidate.to_ascii_string());
	if (!checked || checked->localpart != box.localpart) {
		r.error = "parsing localpart in from address: " + box.localpart;
		return r;
	}
	r.ok = true;
	r.address = std::move(candidate);
	return r;
}

}  // namespace

FromResult parse_single_from(const HeaderSection& section) {
	// RFC 5322 3.6: exactly one From field. The obsolete syntax allowing
	// several leaves their meaning open, and DKIM signs the last instance
	// while a reader may use the first, so refuse instead of picking.
	std::vector<const HeaderField*> from_fields = find_fields(section, "From");
	if (from_fields.size() != 1) {
		FromResult r;
		r.error = "missing or duplicate from header: " + std::to_string(from_fields.size()) + " headers";
		return r;
	}
	return parse_from_field(*from_fields[0]);
}

FromResult parse_first_from(const HeaderSection& section) {
	std::vector<const HeaderField*> from_fields = find_fields(section, "From");
	if (from_fields.empty()) {
		FromResult r;
		r.error = "missing from header";
		return r;
	}
	return parse_from_field(*from_fields[0]);
}

FromResult parse_single_from(std::string_view message) {
	std::string error;
	std::optional<HeaderSection> section = parse_header_section(message, &error);
	if (!section) {
		FromResult r;
		r.error = "parsing message header: " + error;
		return r;
	}
	return parse_single_from(*section);
}

namespace {

// Splits an address list at its own separators (RFC 5322 3.4): "," between
// elements, ":" after a group's display name, ";" at a group's end; never
// inside quoted strings, comments or angle addresses. nullopt when one of
// those is not closed.
std::optional<std::vector<std::string>> address_list_elements(std::string_view value) {
	std::vector<std::string> elements;
	std::string current;
	bool quoted = false;
	int comment = 0, angle = 0;
	for (size_t i = 0; i < value.size(); ++i) {
		char c = value[i];
		if (quoted || comment > 0) {
			current += c;
			if (c == '\\' && i + 1 < value.size())
				current += value[++i];
			else if (quoted && c == '"')
				quoted = false;
			else if (!quoted && c == '(')
				++comment;
			else if (!quoted && c == ')')
				--comment;
			continue;
		}
		if (c == '"')
			quoted = true;
		else if (c == '(')
			++comment;
		else if (c == '<')
			++angle;
		else if (c == '>' && angle > 0)
			--angle;
		if (angle == 0 && (c == ',' || c == ';' || c == ':')) {
			if (c != ':') elements.push_back(std::move(current));
			current.clear();  // after ':' the text so far was the group's name
			continue;
		}
		current += c;
	}
	if (quoted || comment > 0 || angle > 0) return std::nullopt;
	elements.push_back(std::move(current));
	return elements;
}

// The addresses of one list element (trimmed, not empty), appended to
// `out`; false with `error` set when it is not an address.
bool append_element_addresses(const std::string& text, std::vector<std::string>& out, std::string& error) {
	if (text.find('@') == std::string::npos) {
		bool bare = true;
		for (char c : text) bare = bare && is_atext(c) && c != '(' && c != '"';
		if (!bare) {
			error = "address without \"@\": " + text;
			return false;
		}
		out.push_back(text);
		return true;
	}
	MailboxListReader reader(text);
	std::optional<std::vector<MailboxListReader::Mailbox>> boxes = reader.read_all();
	if (!boxes) {
		error = reader.error() + ": " + text;
		return false;
	}
	for (const auto& box : *boxes) {
		std::optional<smtp::Domain> domain = smtp::parse_domain(box.domain);
		if (!domain) {
			error = "bad domain in address: " + box.domain;
			return false;
		}
		smtp::Address address;
		address.localpart = box.localpart;
		address.domain = *domain;
		out.push_back(address.to_string());  // quotes the localpart where needed
	}
	return true;
}

}  // namespace

std::optional<std::vector<std::string>> parse_address_list(std::string_view value, std::string* error) {
	std::string why;
	auto elements = address_list_elements(value);
	if (!elements) why = "unterminated quoted string, comment or angle address";
	std::vector<std::string> out;
	for (size_t i = 0; elements && i < elements->size() && why.empty(); ++i) {
		const std::string& element = (*elements)[i];
		size_t first = element.find_first_not_of(" \t\r\n");
		if (first == std::string::npos) continue;  // RFC 5322 4.4: empty list elements are allowed
		size_t last = element.find_last_not_of(" \t\r\n");
		append_element_addresses(element.substr(first, last - first + 1), out, why);
	}
	if (why.empty()) return out;
	if (error) *error = why;
	return std::nullopt;
}

bool has_header(const HeaderSection& section, std::string_view name) { return !find_fields(section, name).empty(); }

std::optional<std::string> header_value(const HeaderSection& section, std::string_view name) {
	std::vector<const HeaderField*> fields = find_fields(section, name);
	if (fields.empty()) return std::nullopt;
	return fields.front()->unfolded_value();
}

std::string make_message_id(const std::string& hostname) {
	// 16 random bytes make 22 base64url characters without padding.
	return base64url_encode_nopad(random_bytes(16)) + "@" + hostname;
}

std::string message_id_header(std::string_view message_id) {
	std::string out = "Message-Id: <";
	out += message_id;
	out += ">\r\n";
	return out;
}

std::string date_header(std::time_t t, int tz_offset_s) { return "Date: " + format_date(t, tz_offset_s) + "\r\n"; }

}  // namespace tern::message
