// SMTP command-argument parser (see parser.h, doc/behaviour.md §3).
//
// The parser walks the argument text with one offset into two strings: the
// original and a copy with only a-z upper-cased. Keywords are matched on the
// copy, values are cut from the original; because the copy changes no byte
// outside a-z, UTF-8 offsets line up in both.
#include "smtp/parser.h"

#include <charconv>
#include <cstdlib>
#include <idn2.h>
#include <set>

#include "smtp/go_printable.h"
#include "smtp/replies.h"
#include "util/base64.h"
#include "util/failed.h"
#include "util/hex.h"
#include "util/strings.h"

namespace tern::smtp {

namespace {

// RFC 5321 4.5.3.1: object size limits.
constexpr size_t max_localpart_pedantic = 64;  // 4.5.3.1.1
constexpr size_t max_localpart_lenient = 128;  // generated bounce addresses exceed 64 in practice
constexpr size_t max_domain = 255;             // 4.5.3.1.2
constexpr size_t max_path = 256;               // 4.5.3.1.3
constexpr size_t max_sasl_mech = 20;           // RFC 4422 3.1

bool is_upper_alpha(unsigned char c) { return c >= 'A' && c <= 'Z'; }

// RFC 5322 3.2.3 atext, minus the letters and digits.
bool is_atext_special(unsigned char c) {
	switch (c) {
	case '!':
	case '#':
	case '$':
	case '%':
	case '&':
	case '\'':
	case '*':
	case '+':
	case '-':
	case '/':
	case '=':
	case '?':
	case '^':
	case '_':
	case '`':
	case '{':
	case '|':
	case '}':
	case '~': return true;
	default: return false;
	}
}

std::string rune_text(char32_t cp) {
	std::string s;
	append_utf8(s, cp);
	return s;
}

// A name of ASCII labels of 1 to 63 octets, none of them starting or
// ending with a hyphen or with hyphens in its 3rd and 4th positions (which
// UTS #46 CheckHyphens refuses, and where A-labels start, "xn--", RFC 5890
// 2.3.2.1): its A-label and U-label forms are both the name in lower case
// (UTS #46 maps ASCII upper case to lower case and leaves other ASCII label
// characters alone), so libidn2, whose Unicode tables cost half a megabyte
// of memory and most of the time of a command, is not needed for it.
bool plain_ascii_name(std::string_view name, bool long_labels) {
	for (;;) {
		std::string_view label = name.substr(0, name.find('.'));
		if (label.empty() || (label.size() > 63 && !long_labels) || label.front() == '-' || label.back() == '-')
			return false;
		if (label.size() >= 4 && label.substr(2, 2) == "--") return false;
		for (unsigned char c : label)
			if (c > 0x7f) return false;
		if (label.size() == name.size()) return true;
		name.remove_prefix(label.size() + 1);
	}
}

// Lower-case letters, digits and hyphens in each label, none first (RFC
// 5321 4.1.2 sub-domain in ASCII): what an A-label form must be.
bool ldh_labels(std::string_view name) {
	bool label_start = true;
	for (char c : name) {
		if (c == '.') {
			label_start = true;
			continue;
		}
		bool ldh = (c >= 'a' && c <= 'z') || is_ascii_digit(static_cast<unsigned char>(c)) ||
		    (c == '-' && !label_start);
		if (!ldh) return false;
		label_start = false;
	}
	return true;
}

// Converts a syntactically checked domain to its A-label and U-label forms
// (RFC 5890, with UTS #46 mapping as resolvers do), or returns libidn2's
// complaint. The A-label form is a name of letters, digits, hyphens and
// dots, which parse_domain takes again.
std::optional<Domain> idna_convert(const std::string& name, std::string& error, bool long_labels) {
	if (plain_ascii_name(name, long_labels)) {
		Domain d;
		d.ascii = ascii_lower(name);
		d.unicode = d.ascii;
		return d;
	}
	char* ascii = nullptr;
	int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(name.c_str()), reinterpret_cast<uint8_t**>(&ascii),
	                        IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK) {
		error = std::string("to ascii: ") + idn2_strerror(rc);
		return std::nullopt;
	}
	Domain d;
	d.ascii = ascii_lower(ascii);
	idn2_free(ascii);
	// UTS #46 mapping can delete characters (U+00AD soft hyphen), leaving an
	// empty name or label, and map others to ASCII that no host name has
	// (U+00A0 to a space): both found by fuzzing. Lookups apply the STD3
	// rules (UTS #46 4, UseSTD3ASCIIRules), which refuse the second kind;
	// libidn2 with its flag for them drops such characters instead, so the
	// A-label form is checked here.
	if (d.ascii.empty() || d.ascii.front() == '.' || d.ascii.back() == '.' ||
	    d.ascii.find("..") != std::string::npos) {
		error = "to ascii: empty label after mapping";
		return std::nullopt;
	}
	if (!ldh_labels(d.ascii)) {
		error = "to ascii: character not allowed in a host name after mapping";
		return std::nullopt;
	}

	char* unicode = nullptr;
	rc = idn2_to_unicode_8z8z(d.ascii.c_str(), &unicode, 0);
	if (rc != IDN2_OK) {
		error = std::string("to unicode: ") + idn2_strerror(rc);
		return std::nullopt;
	}
	d.unicode = unicode;
	idn2_free(unicode);
	return d;
}

// RFC 5321 4.1.2 Dot-string check, used to decide whether a localpart needs
// quoting when written out. UTF-8 counts as atext (RFC 6531 3.3).
bool is_dot_string(std::string_view localpart) {
	for (std::string_view atom : split(localpart, '.')) {
		if (atom.empty()) return false;
		for (unsigned char c : atom)
			if (!(is_ascii_alpha(c) || is_ascii_digit(c) || c > 0x7f || is_atext_special(c))) return false;
	}
	return true;
}

std::string format_localpart(std::string_view localpart) {
	if (is_dot_string(localpart)) return std::string(localpart);
	// RFC 5321 4.1.2 Quoted-string: only '"' and '\' need a backslash.
	std::string out = "\"";
	for (char c : localpart) {
		if (c == '"' || c == '\\') out += '\\';
		out += c;
	}
	out += '"';
	return out;
}

// The end of a command's arguments without the blanks its listener
// tolerates there: the submission listener is strict, the delivery
// listener allows trailing blanks (RFC 5321 4.1.1: be liberal).
static std::string_view without_tolerated_end_blanks(std::string_view args, const ParseMode& mode) {
	if (mode.submission) return args;
	while (!args.empty() && (args.back() == ' ' || args.back() == '\t')) args.remove_suffix(1);
	return args;
}

// One command's arguments being parsed. A step that fails records the reply
// in the parser and returns false or an empty optional; its caller returns
// at once, up to the public function, which hands the reply out as its
// Result's error. The recorded reply is therefore the first one the descent
// met, at the offset where it met it.
class Parser {
public:
	Parser(std::string_view text, bool smtputf8, const ParseMode& mode)
		: orig_(text), upper_(ascii_upper(text)), smtputf8_(smtputf8), mode_(mode) {}

	// Refuses with `reply`; there is only ever one, the first.
	Failed refuse(SmtpError reply) {
		TERN_ASSERT(!refusal_, "the parse went on after a refusal");
		refusal_ = std::move(reply);
		return {};
	}

	Failed fail(const std::string& what) { return refuse(syntax_error(what, orig_.substr(pos_), mode_)); }

	// RFC 6531 3.3: UTF-8 in an address needs the SMTPUTF8 extension.
	Failed fail_non_ascii_localpart() {
		return refuse(SmtpError{utf8_localpart_code_, std::string(se::msg_8bit_required7),
		                        "non-ascii address not permitted without smtputf8"});
	}

	bool failed() const { return refusal_.has_value(); }

	// The reply of the step that failed, for the public function to return.
	SmtpError refusal() {
		TERN_ASSERT(refusal_, "a parse that did not fail has no refusal");
		return std::move(*refusal_);
	}

	bool empty() const { return pos_ == orig_.size(); }

	bool expect_empty() {
		if (!empty()) return fail("expected end of line");
		return true;
	}

	// End of a command, with the blanks the listener tolerates there.
	bool expect_end() {
		if (without_tolerated_end_blanks(orig_.substr(pos_), mode_).empty()) {
			pos_ = orig_.size();
			return true;
		}
		if (mode_.submission) return expect_empty();
		std::string_view rest = remainder();
		return fail("trailing data, not white space: " + quote_go(rest));
	}

	bool has_prefix(std::string_view keyword) const {
		return std::string_view(upper_).substr(pos_).starts_with(keyword);
	}

	// `keyword` must be upper case: it is matched case-insensitively.
	bool take(std::string_view keyword) {
		if (!has_prefix(keyword)) return false;
		pos_ += keyword.size();
		return true;
	}

	bool expect(std::string_view keyword) {
		if (!take(keyword)) return fail("expected " + quote_go(keyword));
		return true;
	}

	bool space() { return take(" "); }
	bool expect_space() { return expect(" "); }

	std::string_view taken(size_t n) {
		std::string_view r = orig_.substr(pos_, n);
		pos_ += r.size();
		return r;
	}

	std::string_view remainder() { return taken(orig_.size() - pos_); }

	// Upper-cased next byte, or -1 at the end.
	int peek() const { return empty() ? -1 : static_cast<unsigned char>(upper_[pos_]); }

	size_t offset() const { return pos_; }
	std::string_view since(size_t start) const { return orig_.substr(start, pos_ - start); }

	// Takes the longest run of bytes (tested on the upper-cased copy, with
	// their index in the run) accepted by `accept`; at least one is required.
	// `accept` may refuse a byte outright (it returns fail...()), which ends
	// the run with that refusal.
	template <typename Accept>
	std::optional<std::string_view> take_while1(std::string_view what, Accept accept) {
		if (empty()) return fail("need at least one char for " + std::string(what));
		size_t n = run_length(accept);
		if (failed()) return Failed{};
		if (n == 0) return fail("expected at least one char for " + std::string(what));
		return taken(n);
	}

	template <typename Accept>
	std::string_view take_while(Accept accept) {
		return taken(run_length(accept));
	}

	// RFC 5321 4.1.2 Domain; U-labels only with SMTPUTF8 (RFC 6531 3.3).
	std::optional<Domain> domain() {
		auto label = subdomain();
		if (!label) return Failed{};
		std::string name(*label);
		while (take(".")) {
			label = subdomain();
			if (!label) return Failed{};
			name += '.';
			name += *label;
		}
		if (name.size() > max_domain) return fail("domain longer than 255 octets");
		std::string error;
		auto d = idna_convert(name, error, mode_.long_labels);
		if (!d) return fail("parsing domain name " + quote_go(name) + ": " + error);
		return d;
	}

	// RFC 5321 4.1.2 Domain / address-literal, as in a mailbox or EHLO.
	struct IpDomain {
		Domain domain;
		std::optional<IpAddr> ip;
	};

	std::optional<IpDomain> ip_domain(bool is_ehlo) {
		if (!take("[")) {
			auto d = domain();
			if (!d) return Failed{};
			return IpDomain{std::move(*d), std::nullopt};
		}
		// RFC 5321 4.1.3: IPv4 literals start with a digit; anything else is
		// a tagged literal of which we know only "IPv6".
		bool tagged_ipv6 = false;
		if (!is_ascii_digit(static_cast<unsigned char>(peek()))) {
			auto tag = ldh_str();
			if (!tag || !expect(":")) return Failed{};
			if (!iequals(*tag, "IPv6")) return fail("unrecognized address literal " + quote_go(*tag));
			tagged_ipv6 = true;
		}
		auto text = take_while1("address literal", [](unsigned char c, size_t) { return c != ']'; });
		if (!text) return Failed{};
		// The model tolerates a missing "]"; so do we, for parity.
		take("]");
		auto ip = IpAddr::parse(*text);
		if (!ip) return fail("invalid ip in address: " + quote_go(*text));
		// Mail user agents often forget the IPv6 tag in EHLO; forgive them on
		// submission, but be strict with other servers.
		const bool sloppy_ipv6_ok = is_ehlo && mode_.submission && !mode_.pedantic;
		if (tagged_ipv6 && !ip->v6) return fail("ip address is not ipv6");
		if (!tagged_ipv6 && ip->v6 && !sloppy_ipv6_ok)
			return fail("ip address is ipv6, must use syntax [IPv6:...]");
		return IpDomain{Domain{}, ip};
	}

	// RFC 5321 4.1.2 Local-part.
	std::optional<std::string> localpart() {
		std::string s;
		if (has_prefix("\"")) {
			auto quoted = quoted_string(true);
			if (!quoted) return Failed{};
			s = std::move(*quoted);
		} else {
			auto word = atom(true);
			if (!word) return Failed{};
			s = *word;
			while (take(".")) {
				word = atom(true);
				if (!word) return Failed{};
				s += '.';
				s += *word;
			}
		}
		if (s.size() > max_localpart_lenient || (mode_.pedantic && s.size() > max_localpart_pedantic))
			return fail("localpart longer than 64 octets");
		if (!valid_utf8(s)) return fail("localpart is not valid utf-8");
		return s;
	}

	// RFC 5321 4.1.2 Quoted-string (RFC 6531 3.3 adds UTF-8); returns the
	// content with the quotes and escapes removed.
	std::optional<std::string> quoted_string(bool is_localpart) {
		if (!expect("\"")) return Failed{};
		std::string s;
		bool escaped = false;
		for (;;) {
			if (empty()) return fail("need another character");
			Utf8Rune r = decode_utf8(orig_.substr(pos_));
			std::string_view raw = taken(r.len);
			const char32_t c = r.cp;
			if (escaped) {
				// quoted-pairSMTP: backslash followed by printable ASCII.
				if (c >= ' ' && c < 0x7f) {
					s += static_cast<char>(c);
					escaped = false;
					continue;
				}
				return fail("invalid localpart, bad escaped char " + rune_text(c));
			}
			if (c == '\\') {
				escaped = true;
				continue;
			}
			if (c == '"') return s;
			if (is_localpart && c > 0x7f && !smtputf8_) return fail_non_ascii_localpart();
			if ((c >= ' ' && c < 0x7f) || (c > 0x7f && smtputf8_)) {
				s += raw;  // raw bytes, so invalid UTF-8 is caught by the caller
				continue;
			}
			return fail("invalid localpart, invalid character " + rune_text(c));
		}
	}

	// RFC 5321 4.1.2 Atom (RFC 6531 3.3: UTF-8 allowed with SMTPUTF8).
	std::optional<std::string_view> atom(bool is_localpart) {
		return take_while1("atom", [&](unsigned char c, size_t) -> bool {
			if (is_atext_special(c)) return true;
			if (is_localpart && c > 0x7f && !smtputf8_) return fail_non_ascii_localpart();
			return is_ascii_digit(c) || is_upper_alpha(c) || (c > 0x7f && smtputf8_);
		});
	}

	// RFC 5321 4.1.2 String, as for VRFY/EXPN/NOOP.
	std::optional<std::string> string_arg() {
		if (peek() == '"') return quoted_string(false);
		auto word = atom(false);
		if (!word) return Failed{};
		return std::string(*word);
	}

	// RFC 5321 4.1.2 Path: "<" [ A-d-l ":" ] Mailbox ">"; the source route
	// is parsed and discarded (RFC 5321 3.3, C).
	std::optional<Address> bare_path() {
		if (take("@")) {
			if (!domain()) return Failed{};
			while (take(",")) {
				if (!expect("@") || !domain()) return Failed{};
			}
			if (!expect(":")) return Failed{};
		}
		return mailbox();
	}

	// RFC 5321 4.1.2 Mailbox.
	std::optional<Address> mailbox() {
		Address a;
		auto local = localpart();
		if (!local || !expect("@")) return Failed{};
		a.localpart = std::move(*local);
		auto d = ip_domain(false);
		if (!d) return Failed{};
		a.domain = std::move(d->domain);
		a.ip = d->ip;
		return a;
	}

	// RFC 5321 4.1.2 Reverse-path without the brackets (see raw_reverse_path);
	// the caller has checked that it is not "<>", the null reverse path.
	std::optional<Address> bare_reverse_path() {
		// RFC 6531 3.7.1: non-ASCII sender without SMTPUTF8 gets 550 5.6.7.
		utf8_localpart_code_ = 550;
		return bare_path();
	}

	// RFC 5321 4.1.2 Forward-path.
	std::optional<Address> forward_path() {
		// RFC 6531 3.7.1: non-ASCII recipient without SMTPUTF8 gets 553 5.6.7.
		utf8_localpart_code_ = 553;
		size_t start = pos_;
		if (!expect("<")) return Failed{};
		auto a = bare_path();
		if (!a || !expect(">")) return Failed{};
		if (pos_ - start > max_path) return fail("path longer than 256 octets");
		return a;
	}

	// MAIL's path is cut out before its parameters are known: the SMTPUTF8
	// parameter that follows decides whether UTF-8 is allowed in it.
	std::optional<std::string_view> raw_reverse_path() {
		if (!expect("<")) return Failed{};
		std::string_view raw = take_while([](unsigned char c, size_t) { return c != '>'; });
		if (!expect(">")) return Failed{};
		return raw;
	}

	// RFC 5321 4.1.2 esmtp-keyword, returned as written.
	std::optional<std::string_view> param_keyword() {
		return take_while1("parameter keyword", [](unsigned char c, size_t i) {
			return is_ascii_digit(c) || is_upper_alpha(c) || (i > 0 && c == '-');
		});
	}

	// RFC 5321 4.1.2 esmtp-value (RFC 6531 3.3 adds UTF-8).
	std::optional<std::string_view> param_value() {
		return take_while1("parameter value", [&](unsigned char c, size_t) {
			return (c > ' ' && c < 0x7f && c != '=') || (c > 0x7f && smtputf8_);
		});
	}

	// Decimal number of at most `max_digits` digits that fits in int64.
	std::optional<int64_t> number(size_t max_digits) {
		auto digits = take_while1(
		    "number", [&](unsigned char c, size_t i) { return is_ascii_digit(c) && i < max_digits; });
		if (!digits) return Failed{};
		int64_t v = 0;
		auto [end, ec] = std::from_chars(digits->data(), digits->data() + digits->size(), v);
		if (ec != std::errc() || end != digits->data() + digits->size())
			return fail("bad number " + quote_go(*digits) + ": strconv.ParseInt: parsing " +
			            quote_go(*digits) + ": value out of range");
		return v;
	}

	// RFC 4422 3.1 sasl-mech; doc/behaviour.md D4: matched case-insensitively,
	// returned upper-cased.
	std::optional<std::string> sasl_mech() {
		size_t start = pos_;
		auto mech = take_while1("sasl-mech", [](unsigned char c, size_t i) {
			return i < max_sasl_mech && (is_upper_alpha(c) || is_ascii_digit(c) || c == '-' || c == '_');
		});
		if (!mech) return Failed{};
		return upper_.substr(start, pos_ - start);
	}

	// RFC 3461 4 xtext, decoded: printable ASCII except "+" and "=", with
	// "+HH" (upper-case hex) for anything else. Ends at a space or the end.
	std::optional<std::string> xtext() {
		std::string out;
		while (!empty()) {
			const auto c = static_cast<unsigned char>(orig_[pos_]);
			if (c == ' ') break;
			if (c >= 0x21 && c < 0x7f && c != '+' && c != '=') {
				out += static_cast<char>(c);
				pos_++;
				continue;
			}
			if (c != '+')
				return fail("parsing xtext: invalid character " + quote_go(orig_.substr(pos_, 1)));
			pos_++;
			std::string_view hex = taken(2);
			// RFC 3461 4: upper-case hex digits only.
			if (hex.size() != 2 || upper_hex_digit_value(hex[0]) < 0 || upper_hex_digit_value(hex[1]) < 0)
				return fail("parsing xtext: invalid hexadecimal " + quote_go(hex));
			out += static_cast<char>(upper_hex_digit_value(hex[0]) * 16 + upper_hex_digit_value(hex[1]));
		}
		return out;
	}

private:
	template <typename Accept>
	size_t run_length(Accept& accept) {
		size_t n = 0;
		while (pos_ + n < upper_.size() && accept(static_cast<unsigned char>(upper_[pos_ + n]), n)) n++;
		return n;
	}

	// RFC 5321 4.1.3 Standardized-tag. The model allows "-" only as the first
	// character; we keep that for identical error texts.
	std::optional<std::string_view> ldh_str() {
		return take_while1("ldh-str", [](unsigned char c, size_t i) {
			return is_upper_alpha(c) || is_ascii_digit(c) || (i == 0 && c == '-');
		});
	}

	// RFC 5321 4.1.2 sub-domain; "-" not first; UTF-8 with SMTPUTF8.
	std::optional<std::string_view> subdomain() {
		return take_while1("subdomain", [&](unsigned char c, size_t i) {
			return is_ascii_digit(c) || is_upper_alpha(c) || (i > 0 && c == '-') || (c > 0x7f && smtputf8_);
		});
	}

	std::string_view orig_;
	std::string upper_;
	size_t pos_ = 0;
	bool smtputf8_;
	const ParseMode& mode_;
	int utf8_localpart_code_ = 550;
	std::optional<SmtpError> refusal_;
};

}  // namespace

std::string quote_go(std::string_view s) {
	std::string out = "\"";
	while (!s.empty()) {
		Utf8Rune r = decode_utf8(s);
		const char32_t c = r.cp;
		if (!r.valid) {
			out += "\\x";
			append_hex_byte(out, static_cast<unsigned char>(s[0]));
		} else if (c == '"' || c == '\\') {
			out += '\\';
			out += static_cast<char>(c);
		} else if (c >= 0x20 && c < 0x7f) {
			out += static_cast<char>(c);
		} else if (c == '\a') {
			out += "\\a";
		} else if (c == '\b') {
			out += "\\b";
		} else if (c == '\f') {
			out += "\\f";
		} else if (c == '\n') {
			out += "\\n";
		} else if (c == '\r') {
			out += "\\r";
		} else if (c == '\t') {
			out += "\\t";
		} else if (c == '\v') {
			out += "\\v";
		} else if (is_ascii_control(c)) {
			out += "\\x";
			append_hex_byte(out, static_cast<unsigned char>(c));
		} else if (!go_printable(c)) {
			// Four hex digits in the BMP, eight above it, as Go writes them.
			const int digits = c < 0x10000 ? 4 : 8;
			out += digits == 4 ? "\\u" : "\\U";
			append_hex_digits(out, c, digits);
		} else {
			out += s.substr(0, r.len);
		}
		s.remove_prefix(r.len);
	}
	out += '"';
	return out;
}

SmtpError syntax_error(std::string_view what, std::string_view remaining, const ParseMode& mode) {
	// RFC 5321 4.2.2 501. The unparsed rest helps authenticated users debug
	// their client; strangers only see it in our log.
	std::string text = "bad syntax: " + std::string(what);
	if (mode.authenticated) text += " (remaining " + quote_go(remaining) + ")";
	return SmtpError{501, std::string(se::proto_syntax2), std::move(text)};
}

std::string Address::to_string() const {
	std::string out = format_localpart(localpart) + "@";
	if (ip)
		out += ip->to_literal();
	else
		out += domain.unicode.empty() ? domain.ascii : domain.unicode;
	return out;
}

std::string Address::to_ascii_string() const { return format_localpart(localpart) + "@" + lookup_domain(); }

std::string Address::lookup_domain() const { return ip ? ip->to_literal() : domain.ascii; }

// RFC 5321 4.1.1.1: "EHLO" SP ( Domain / address-literal ), "HELO" SP Domain.
Result<HelloArg> parse_hello(std::string_view args, bool ehlo, const ParseMode& mode) {
	Parser p(args, mode.smtputf8, mode);
	if (!p.expect_space()) return p.refusal();
	size_t start = p.offset();
	HelloArg hello;
	if (ehlo) {
		auto d = p.ip_domain(true);
		if (!d) return p.refusal();
		hello.domain = std::move(d->domain);
		hello.ip = d->ip;
	} else {
		auto d = p.domain();
		if (!d) return p.refusal();
		hello.domain = std::move(*d);
	}
	hello.raw = std::string(p.since(start));
	// RFC 5321 4.1.1.1 leaves room for text after the name; ignore it.
	p.remainder();
	if (!p.expect_end()) return p.refusal();
	return hello;
}

// RFC 5321 4.1.1.11: a parameter we do not know.
static SmtpError unrecognized_param(std::string_view keyword) {
	return SmtpError{555, std::string(se::proto_unrecognized_param3),
	                 "unrecognized parameter " + quote_go(keyword)};
}

static SmtpError duplicate_param(std::string_view keyword) {
	return SmtpError{501, std::string(se::proto_param_invalid4), "duplicate param " + quote_go(keyword)};
}

// RFC 3461 4: a malformed DSN parameter value is a parameter error.
static SmtpError invalid_dsn_param(std::string_view keyword, std::string_view value) {
	return SmtpError{501, std::string(se::proto_param_invalid4),
	                 "invalid " + ascii_upper(keyword) + " parameter " + quote_go(value)};
}

// RFC 5321 4.1.2 esmtp-param's "=" esmtp-value.
static std::optional<std::string_view> param_value_after_equals(Parser& p) {
	if (!p.expect("=")) return std::nullopt;
	return p.param_value();
}

// One MAIL parameter after its keyword (`key` is the keyword upper-cased);
// false when it is refused, with the reply in `p`.
static bool parse_mail_param(Parser& p, std::string_view keyword, const std::string& key, MailArgs& mail,
                             int64_t max_message_size) {
	if (key == "SIZE") {
		// RFC 1870 6: at most 20 digits.
		if (!p.expect("=")) return false;
		mail.size = p.number(20);
		if (!mail.size) return false;
		// RFC 1870 6.1: a declared size over the limit is refused at once.
		if (*mail.size > max_message_size) return p.refuse(replies::message_too_large(*mail.size));
		return true;
	}
	if (key == "BODY") {
		// RFC 6152 2.
		auto value = param_value_after_equals(p);
		if (!value) return false;
		std::string body = ascii_upper(*value);
		if (body != "7BIT" && body != "8BITMIME")
			return p.refuse(SmtpError{555, std::string(se::proto_param_invalid4),
			                          "unrecognized parameter " + quote_go(keyword)});
		mail.body_8bitmime = body == "8BITMIME";
		return true;
	}
	if (key == "AUTH") {
		// RFC 4954 5: AUTH=<mailbox> or AUTH=<> as xtext; doc/behaviour.md D3.
		if (!p.expect("=")) return false;
		mail.auth = p.xtext();
		return mail.auth.has_value();
	}
	if (key == "SMTPUTF8") {
		// RFC 6531 3.4.
		mail.smtputf8 = true;
		return true;
	}
	if (key == "RET" || key == "ENVID") {
		// RFC 3461 4.3, 4.4.
		auto value = param_value_after_equals(p);
		if (!value) return false;
		if (key == "RET") {
			auto ret = parse_ret(*value);
			if (!ret) return p.refuse(invalid_dsn_param(keyword, *value));
			mail.ret = *ret;
		} else {
			mail.envid = parse_envid(*value);
			if (!mail.envid) return p.refuse(invalid_dsn_param(keyword, *value));
		}
		return true;
	}
	if (key == "REQUIRETLS") {
		// RFC 8689 2: a parameter without a value.
		mail.requiretls = true;
		return true;
	}
	return p.refuse(unrecognized_param(keyword));
}

// RFC 5321 4.1.1.2 "MAIL FROM:" Reverse-path [SP Mail-parameters].
Result<MailArgs> parse_mail(std::string_view args, const ParseMode& mode, int64_t max_message_size) {
	Parser p(args, mode.smtputf8, mode);
	if (!p.expect(" FROM:")) return p.refusal();
	// No space belongs after the colon (RFC 5321 4.1.2), but Outlook sends
	// one; tolerated on submission only.
	if (mode.submission && !mode.pedantic) p.space();
	auto raw_path = p.raw_reverse_path();
	if (!raw_path) return p.refusal();

	MailArgs mail;
	std::set<std::string> seen;
	while (p.space()) {
		auto keyword = p.param_keyword();
		if (!keyword) return p.refusal();
		std::string key = ascii_upper(*keyword);
		if (!seen.insert(key).second) return duplicate_param(*keyword);
		if (!parse_mail_param(p, *keyword, key, mail, max_message_size)) return p.refusal();
	}

	// "<>" is the null reverse path: `from` stays empty.
	if (!raw_path->empty()) {
		Parser path_parser(*raw_path, mode.smtputf8 || mail.smtputf8, mode);
		mail.from = path_parser.bare_reverse_path();
		if (!mail.from || !path_parser.expect_empty()) return path_parser.refusal();
	}
	if (!p.expect_end()) return p.refusal();
	return mail;
}

// RFC 5321 4.1.1.3 "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
// Forward-path ) [SP Rcpt-parameters].
Result<RcptArgs> parse_rcpt(std::string_view args, const ParseMode& mode) {
	Parser p(args, mode.smtputf8, mode);
	if (!p.expect(" TO:")) return p.refusal();
	if (mode.submission && !mode.pedantic) p.space();
	RcptArgs rcpt;
	if (p.take("<POSTMASTER>")) {
		rcpt.postmaster = true;
	} else {
		auto to = p.forward_path();
		if (!to) return p.refusal();
		rcpt.to = std::move(*to);
	}
	std::set<std::string> seen;
	while (p.space()) {
		auto keyword = p.param_keyword();
		if (!keyword) return p.refusal();
		std::string key = ascii_upper(*keyword);
		if (key != "NOTIFY" && key != "ORCPT") return unrecognized_param(*keyword);
		if (!seen.insert(key).second) return duplicate_param(*keyword);
		auto value = param_value_after_equals(p);
		if (!value) return p.refusal();
		if (key == "NOTIFY") {
			// RFC 3461 4.1.
			auto notify = parse_notify(*value);
			if (!notify) return invalid_dsn_param(*keyword, *value);
			rcpt.notify = *notify;
		} else {
			// RFC 3461 4.2, RFC 6533 4.
			rcpt.orcpt = parse_orcpt(*value, mode.smtputf8);
			if (!rcpt.orcpt) return invalid_dsn_param(*keyword, *value);
		}
	}
	if (!p.expect_end()) return p.refusal();
	return rcpt;
}

Status parse_no_args(std::string_view args, const ParseMode& mode) {
	Parser p(args, mode.smtputf8, mode);
	if (!p.expect_end()) return p.refusal();
	return {};
}

// RFC 3030 2: bdat-cmd ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF,
// chunk-size ::= 1*DIGIT, end-marker ::= "LAST".
Result<BdatArgs> parse_bdat(std::string_view args, const ParseMode& mode) {
	auto invalid = [](std::string text) {
		return SmtpError{501, std::string(se::proto_param_invalid4), std::move(text)};
	};
	args = without_tolerated_end_blanks(args, mode);
	if (args.empty() || args[0] != ' ') return invalid("invalid BDAT chunk size: missing");
	args.remove_prefix(1);
	size_t digits = 0;
	while (digits < args.size() && args[digits] >= '0' && args[digits] <= '9') ++digits;
	BdatArgs b;
	auto [end, ec] = std::from_chars(args.data(), args.data() + digits, b.size);
	if (digits == 0 || ec != std::errc() || end != args.data() + digits)
		return invalid(ec == std::errc::result_out_of_range ? "invalid BDAT chunk size: too large"
		                                                    : "invalid BDAT chunk size: " + quote_go(args));
	std::string_view rest = args.substr(digits);
	if (!rest.empty()) {
		if (rest[0] != ' ' || !iequals(rest.substr(1), "LAST"))
			return invalid("invalid BDAT parameter: " + quote_go(rest));
		b.last = true;
	}
	return b;
}

// RFC 5321 4.1.1.6/4.1.1.7 with RFC 6531 3.7.4's optional SMTPUTF8.
Result<std::string> parse_vrfy(std::string_view args, const ParseMode& mode) {
	Parser p(args, mode.smtputf8, mode);
	if (!p.expect_space()) return p.refusal();
	auto s = p.string_arg();
	if (!s) return p.refusal();
	if (p.space() && !p.expect("SMTPUTF8")) return p.refusal();
	if (!p.expect_end()) return p.refusal();
	return std::move(*s);
}

CommandLine split_command(std::string_view line) {
	size_t sp = line.find(' ');
	if (sp == std::string_view::npos) return {line, {}};
	return {line.substr(0, sp), line.substr(sp)};
}

std::string command_verb(std::string_view verb) {
	std::string out;
	out.reserve(verb.size());
	while (!verb.empty()) {
		if (verb.starts_with("\xc4\xb0")) {  // U+0130
			out += 'i';
			verb.remove_prefix(2);
		} else if (verb.starts_with("\xe2\x84\xaa")) {  // U+212A
			out += 'k';
			verb.remove_prefix(3);
		} else {
			char c = verb[0];
			out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
			verb.remove_prefix(1);
		}
	}
	return out;
}

// RFC 5321 4.1.1.9: "NOOP" [ SP String ].
Status parse_noop(std::string_view args, const ParseMode& mode) {
	Parser p(args, mode.smtputf8, mode);
	if (p.space() && !p.string_arg()) return p.refusal();
	if (!p.expect_end()) return p.refusal();
	return {};
}

// RFC 4954 4: "AUTH" SP sasl-mech [SP initial-response].
Result<AuthArgs> parse_auth(std::string_view args, const ParseMode& mode) {
	Parser p(args, mode.smtputf8, mode);
	if (!p.expect_space()) return p.refusal();
	auto mechanism = p.sasl_mech();
	if (!mechanism) return p.refusal();
	AuthArgs auth;
	auth.mechanism = std::move(*mechanism);
	// Checked after the mechanism (initial_response): an unknown one, or
	// one refused without TLS, is answered for what it is first, whatever
	// follows its name.
	std::string_view rest = p.remainder();
	if (rest.empty()) return auth;
	if (rest.front() == ' ')
		auth.initial = std::string(rest.substr(1));
	else
		auth.unexpected = std::string(rest);
	return auth;
}

Result<std::optional<std::string>> initial_response(const AuthArgs& auth, bool takes_initial, const ParseMode& mode) {
	// A mechanism that takes no initial response allows nothing after its
	// name; else a space must come first.
	if (!takes_initial && (auth.initial || !auth.unexpected.empty()))
		return syntax_error("expected end of line", auth.initial ? " " + *auth.initial : auth.unexpected, mode);
	if (!auth.unexpected.empty()) return syntax_error("expected " + quote_go(" "), auth.unexpected, mode);
	return decode_initial_response(auth.initial);
}

Result<std::optional<std::string>> decode_initial_response(const std::optional<std::string>& initial) {
	if (!initial) return std::optional<std::string>();
	if (initial->empty())
		return SmtpError{501, std::string(se::proto_syntax2),
		                 "missing initial auth base64 parameter after space"};
	// RFC 4954 4: "=" stands for an empty initial response.
	if (*initial == "=") return std::optional<std::string>(std::string());
	Result<std::string> decoded = decode_auth_base64(*initial);
	if (!decoded) return decoded.error();
	return std::optional<std::string>(std::move(*decoded));
}

Result<std::string> decode_auth_base64(std::string_view text) {
	size_t offset = 0;
	// The model's decoder passes over CR and LF anywhere: a stray CR left
	// before the line's end or inside it is no error.
	std::optional<std::string> decoded = base64_decode(text, &offset, Newlines::skip);
	if (!decoded)
		return SmtpError{501, std::string(se::proto_syntax2),
		                 "invalid base64: illegal base64 data at input byte " + std::to_string(offset)};
	return std::move(*decoded);
}

namespace {

// A whole text as one domain, or one mailbox, under `mode`.
std::optional<Domain> whole_domain(std::string_view name, const ParseMode& mode) {
	Parser p(name, true, mode);
	auto d = p.domain();
	if (!d || !p.empty()) return std::nullopt;
	return d;
}

std::optional<Address> whole_mailbox(std::string_view text, const ParseMode& mode) {
	Parser p(text, true, mode);
	auto a = p.mailbox();
	if (!a || !p.empty()) return std::nullopt;
	return a;
}

ParseMode header_mode() {
	ParseMode mode;
	mode.long_labels = true;
	return mode;
}

}  // namespace

std::optional<Domain> parse_domain(std::string_view name) { return whole_domain(name, ParseMode{}); }

std::optional<Address> parse_address(std::string_view text) { return whole_mailbox(text, ParseMode{}); }

std::optional<Address> parse_header_address(std::string_view text) { return whole_mailbox(text, header_mode()); }

std::optional<Domain> parse_header_domain(std::string_view name) { return whole_domain(name, header_mode()); }

}  // namespace tern::smtp
