// SPF evaluator (RFC 7208), see spf.h.
//
// Where this evaluator knowingly differs from the model (the model's SPF code), it
// follows RFC 7208:
//  * a, mx and ptr domain-specs are macro-expanded (RFC 7208 5, 7.1);
//  * "redirect" counts toward the 10 DNS-querying terms (RFC 7208 4.6.4);
//  * the void-lookup limit triggers on the third void lookup itself, not on
//    the next DNS term after the second (RFC 7208 4.6.4 "exceeded");
//  * an "mx" answer with more than 10 names is a permerror before any address
//    lookup (RFC 7208 4.6.4);
//  * a PTR lookup error makes "ptr" not match instead of temperror
//    (RFC 7208 5.5);
//  * %{c} is the SMTP client IP, not our own address (RFC 7208 7.2).
#include "mailauth/spf.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <vector>

#include "mailauth/iprev.h"
#include "message/headers.h"
#include "smtp/parser.h"
#include "util/hex.h"
#include "util/strings.h"

namespace tern::mailauth {

namespace {

// RFC 7208 4.6.4 limits.
constexpr int max_dns_terms = 10;
constexpr int max_void_lookups = 2;
constexpr size_t max_mx_names = 10;
constexpr size_t max_ptr_names = 10;
// RFC 7208 7.3: expanded names are cut to 253 characters.
constexpr size_t max_domain_len = max_dns_name_len;


std::string strip_trailing_dot(std::string s) {
	if (!s.empty() && s.back() == '.') s.pop_back();
	return s;
}

// RFC 7208 6.2: explanation text is visible ASCII and spaces; text with
// other bytes is not used (as the model drops it), and it is cut at 800.
std::string usable_explanation(std::string text) {
	constexpr size_t max_explanation_len = 800;
	for (unsigned char c : text)
		if (c < 0x20 || c >= 0x7f) return "";
	if (text.size() > max_explanation_len) text.resize(max_explanation_len);
	return text;
}

// ---------------------------------------------------------------- macros

bool is_macro_letter(char c) {
	switch (c | 0x20) {
	case 's':
	case 'l':
	case 'o':
	case 'd':
	case 'i':
	case 'p':
	case 'h':
	case 'c':
	case 'r':
	case 't':
	case 'v': return true;
	}
	return false;
}

// RFC 7208 7.1 delimiter.
bool is_macro_delimiter(char c) {
	return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '=';
}

// One parsed "%{...}" macro-expand.
struct MacroExpand {
	char letter = 0;     // lower case
	bool upper = false;  // URL-escape the value (RFC 7208 7.3)
	size_t keep = 0;     // 0: all parts
	bool reverse = false;
	std::string delimiters;  // "" means "."
};

// Parses "%{" ... "}" starting at text[pos] == '{' (after '%'). Advances pos
// past '}'. Returns false on a syntax error.
bool parse_macro_expand(std::string_view text, size_t& pos, MacroExpand& out) {
	size_t i = pos + 1;
	if (i >= text.size() || !is_macro_letter(text[i])) return false;
	out.upper = text[i] >= 'A' && text[i] <= 'Z';
	out.letter = static_cast<char>(text[i] | 0x20);
	i++;
	size_t digits_start = i;
	while (i < text.size() && is_ascii_digit(text[i])) i++;
	if (i > digits_start) {
		// RFC 7208 7.3: the DIGIT transformer MUST be nonzero. Large values
		// simply keep every part.
		std::string_view digits = text.substr(digits_start, i - digits_start);
		size_t n = 0;
		for (char c : digits) {
			n = n * 10 + static_cast<size_t>(c - '0');
			if (n > 1000) n = 1000;
		}
		if (n == 0) return false;
		out.keep = n;
	}
	if (i < text.size() && (text[i] == 'r' || text[i] == 'R')) {
		out.reverse = true;
		i++;
	}
	while (i < text.size() && is_macro_delimiter(text[i])) out.delimiters += text[i++];
	if (i >= text.size() || text[i] != '}') return false;
	pos = i + 1;
	return true;
}

// RFC 3986 2.3 unreserved characters stay, everything else is %XX.
std::string url_escape(std::string_view s) {
	std::string out;
	for (unsigned char c : s) {
		if (is_ascii_alnum(static_cast<char>(c)) || c == '-' || c == '.' || c == '_' || c == '~') {
			out += static_cast<char>(c);
		} else {
			out += '%';
			append_hex_byte(out, c, HexCase::upper);
		}
	}
	return out;
}

// %{i}: dotted quad, or for IPv6 32 dot-separated nibbles (RFC 7208 7.3).
std::string macro_ip(const IpAddr& ip) {
	if (!ip.v6) return ip.to_string();
	std::string out;
	for (int i = 0; i < 16; i++) {
		if (i > 0) out += '.';
		append_hex_digits(out, ip.bytes[i] >> 4, 1);
		out += '.';
		append_hex_digits(out, ip.bytes[i] & 0xf, 1);
	}
	return out;
}

// RFC 7208 7.3 transformers: split on the delimiters, optionally reverse,
// keep the right-most `keep` parts, join with ".".
std::string apply_transformers(const std::string& value, const MacroExpand& m) {
	if (m.keep == 0 && !m.reverse && m.delimiters.empty()) return value;
	std::string delims = m.delimiters.empty() ? std::string(".") : m.delimiters;
	std::vector<std::string> parts;
	std::string cur;
	for (char c : value) {
		if (delims.find(c) != std::string::npos) {
			parts.push_back(cur);
			cur.clear();
		} else {
			cur += c;
		}
	}
	parts.push_back(cur);
	if (m.reverse) std::reverse(parts.begin(), parts.end());
	size_t first = 0;
	if (m.keep > 0 && m.keep < parts.size()) first = parts.size() - m.keep;
	std::string out;
	for (size_t i = first; i < parts.size(); i++) {
		if (i > first) out += '.';
		out += parts[i];
	}
	return out;
}

// Checks the RFC 7208 12 macro-string grammar (no expansion). Sets
// `ends_with_macro` when the last element is a macro-expand (domain-end).
bool valid_macro_string(std::string_view text, bool& ends_with_macro) {
	ends_with_macro = false;
	size_t i = 0;
	while (i < text.size()) {
		char c = text[i];
		if (c == '%') {
			if (i + 1 >= text.size()) return false;
			char n = text[i + 1];
			if (n == '%' || n == '_' || n == '-') {
				i += 2;
			} else if (n == '{') {
				MacroExpand m;
				size_t pos = i + 1;
				if (!parse_macro_expand(text, pos, m)) return false;
				i = pos;
			} else {
				return false;
			}
			ends_with_macro = true;
			continue;
		}
		// macro-literal = %x21-24 / %x26-7E
		if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) return false;
		ends_with_macro = false;
		i++;
	}
	return true;
}

// RFC 7208 12 domain-spec = macro-string domain-end, where domain-end is
// "." toplabel ["."] or a macro-expand.
bool valid_domain_spec(std::string_view spec) {
	if (spec.empty()) return false;
	bool ends_with_macro = false;
	if (!valid_macro_string(spec, ends_with_macro)) return false;
	if (ends_with_macro) return true;
	std::string_view s = spec;
	if (s.back() == '.') s.remove_suffix(1);
	size_t dot = s.rfind('.');
	if (dot == std::string_view::npos) return false;
	std::string_view top = s.substr(dot + 1);
	// toplabel: alphanumerics and inner hyphens, not all digits.
	if (top.empty() || top.front() == '-' || top.back() == '-') return false;
	bool has_alpha = false;
	for (char c : top) {
		if (is_ascii_alpha(c))
			has_alpha = true;
		else if (!is_ascii_digit(c) && c != '-')
			return false;
	}
	return has_alpha || top.find('-') != std::string_view::npos;
}

// RFC 7208 4.3: a usable <domain>: labels of 1..63 octets, at least two
// labels, at most 253 octets (trailing dot removed first); name_labels
// counts the labels of a name so shaped, 0 for one that is not. A
// label may hold any printable octet, spaces included: a domain-spec may
// contain any visible character and "%_" expands to a space (RFC 7208 7.1),
// and DNS labels are octet strings (RFC 2181 11).
size_t name_labels(const std::string& name) {
	std::string s = strip_trailing_dot(name);
	if (s.empty() || s.size() > max_domain_len) return 0;
	size_t labels = 0;
	for (std::string_view label : split(s, '.')) {
		if (label.empty() || label.size() > max_dns_label_len) return 0;
		if (has_ascii_control(label)) return 0;
		labels++;
	}
	return labels;
}

bool valid_domain(const std::string& name) { return name_labels(name) >= 2; }

// RFC 7208 2.3, 4.3: the identity being checked (MAIL FROM domain or HELO
// name) must be a fully qualified host name: at least two labels of
// letters, digits, hyphens (and underscores, which real sender domains
// use). Anything else, e.g. "localhost" or a HELO with a space, gives
// "none" without a lookup.
bool valid_identity_domain(const std::string& name) {
	if (!valid_domain(name)) return false;
	for (char c : strip_trailing_dot(name))
		if (!is_ascii_alnum(c) && c != '-' && c != '_' && c != '.') return false;
	return true;
}

// RFC 7208 7.3: an expanded name longer than 253 characters loses labels on
// the left until it fits. Returns "" when nothing fits.
// The cut is found in one search: dropping a label at a time from the
// front moved the rest each time, quadratic in an expansion that macros
// can make hundreds of kilobytes long, on the loop.
std::string truncate_expanded_name(std::string name) {
	name = strip_trailing_dot(std::move(name));
	if (name.size() <= max_domain_len) return name;
	// The first dot from which at most max_domain_len characters follow.
	size_t dot = name.find('.', name.size() - max_domain_len - 1);
	if (dot == std::string::npos) return "";
	return name.substr(dot + 1);
}


// ---------------------------------------------------------------- records

enum class Mechanism { all, include, a, mx, ptr, ip4, ip6, exists };

struct Directive {
	SpfStatus result = SpfStatus::pass;  // from the qualifier
	Mechanism mechanism = Mechanism::all;
	std::string domain_spec;  // unexpanded; "" means <domain>
	IpAddr network;           // ip4/ip6
	int cidr4 = -1;           // -1: not given
	int cidr6 = -1;
	std::string text;  // for mechanism= in Received-SPF
};

struct Record {
	std::vector<Directive> directives;
	std::optional<std::string> redirect;
	std::optional<std::string> explanation;
};

// RFC 7208 4.5: "v=spf1" exactly, case-insensitively, then a space or the end.
bool is_spf_record(std::string_view txt) { return istarts_with(txt, "v=spf1") && (txt.size() == 6 || txt[6] == ' '); }

// ip4-cidr-length / ip6-cidr-length: "0" or no leading zero, at most `max`.
bool parse_cidr_number(std::string_view s, int max, int& out) {
	if (s.empty() || s.size() > 3) return false;
	for (char c : s)
		if (!is_ascii_digit(c)) return false;
	if (s.size() > 1 && s[0] == '0') return false;
	int n = 0;
	for (char c : s) n = n * 10 + (c - '0');
	if (n > max) return false;
	out = n;
	return true;
}

// dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ], given the
// text starting at the first "/".
bool parse_dual_cidr(std::string_view s, Directive& d) {
	if (s.empty()) return true;
	if (s[0] != '/') return false;
	s.remove_prefix(1);
	size_t second = s.find("//");
	if (s.substr(0, 1) == "/") {
		// "//N": only the IPv6 length.
		return parse_cidr_number(s.substr(1), 128, d.cidr6);
	}
	if (second == std::string_view::npos) return parse_cidr_number(s, 32, d.cidr4);
	return parse_cidr_number(s.substr(0, second), 32, d.cidr4) &&
	    parse_cidr_number(s.substr(second + 2), 128, d.cidr6);
}

// RFC 7208 5.3, 5.4, 12: a domain-spec may itself contain "/" and ":"
// (any visible character), so a dual-cidr-length is only recognised at the
// very end of the term: "/N", "//M" or "/N//M" with N and M digits. Returns
// where that suffix starts, or npos when the term has none.
size_t trailing_cidr_start(std::string_view s) {
	// Start of the run of digits that ends at `end`.
	auto digits_start = [s](size_t end) {
		while (end > 0 && is_ascii_digit(s[end - 1])) end--;
		return end;
	};
	size_t last = digits_start(s.size());
	if (last == s.size() || last == 0 || s[last - 1] != '/') return std::string_view::npos;
	if (last < 2 || s[last - 2] != '/') return last - 1;  // "/N"
	size_t start = last - 2;                              // "//M", perhaps after "/N"
	size_t first = digits_start(start);
	if (first < start && first > 0 && s[first - 1] == '/' && (first < 2 || s[first - 2] != '/')) start = first - 1;
	return start;
}

std::string cidr_text(const Directive& d) {
	std::string s;
	if (d.cidr4 >= 0) s += "/" + std::to_string(d.cidr4);
	if (d.cidr6 >= 0) s += (d.mechanism == Mechanism::ip6 ? "/" : "//") + std::to_string(d.cidr6);
	return s;
}

bool malformed(std::string& error, const std::string& why) {
	error = "malformed spf txt record: " + why;
	return false;
}

// RFC 7208 4.6.2: the qualifier, "+" when none is written. Returns it as
// written ("" when none) and removes it from `term`.
std::string take_qualifier(std::string_view& term, Directive& d) {
	switch (term[0]) {
	case '+': d.result = SpfStatus::pass; break;
	case '-': d.result = SpfStatus::fail; break;
	case '~': d.result = SpfStatus::softfail; break;
	case '?': d.result = SpfStatus::neutral; break;
	default: return "";
	}
	std::string qualifier(1, term[0]);
	term.remove_prefix(1);
	return qualifier;
}

// a, mx and ptr (RFC 7208 5.3, 5.4, 5.5): [ ":" domain-spec ] and, except
// for ptr, a dual-cidr-length. `rest` follows the mechanism's name.
bool parse_host_mechanism(const std::string& name, std::string_view rest, std::string_view term, Directive& d,
                          std::string& error) {
	d.mechanism = name == "a" ? Mechanism::a : name == "mx" ? Mechanism::mx : Mechanism::ptr;
	std::string_view cidr;
	if (!rest.empty() && rest[0] == ':') {
		std::string_view spec = rest.substr(1);
		size_t slash = d.mechanism == Mechanism::ptr ? std::string_view::npos : trailing_cidr_start(spec);
		if (slash != std::string_view::npos) {
			cidr = spec.substr(slash);
			spec = spec.substr(0, slash);
		}
		d.domain_spec = std::string(spec);
		if (!valid_domain_spec(d.domain_spec)) return malformed(error, "invalid domain-spec " + d.domain_spec);
	} else if (!rest.empty() && rest[0] == '/' && d.mechanism != Mechanism::ptr) {
		cidr = rest;
	} else if (!rest.empty()) {
		return malformed(error, "unexpected text after " + name);
	}
	if (!parse_dual_cidr(cidr, d)) return malformed(error, "invalid cidr length in " + std::string(term));
	return true;
}

// ip4 and ip6 (RFC 7208 5.6): ":" network [ "/" cidr-length ].
bool parse_ip_mechanism(const std::string& name, std::string_view rest, std::string_view term, Directive& d,
                        std::string& error) {
	bool v6 = name == "ip6";
	d.mechanism = v6 ? Mechanism::ip6 : Mechanism::ip4;
	if (rest.empty() || rest[0] != ':') return malformed(error, name + " needs an address");
	rest.remove_prefix(1);
	size_t slash = rest.find('/');
	std::string_view addr_text = rest.substr(0, slash);
	auto addr = IpAddr::parse(addr_text);
	if (!addr) return malformed(error, "invalid address " + std::string(addr_text));
	if (!v6 && addr->v6) return malformed(error, "ip4 with an IPv6 address");
	if (v6 && !addr->v6) {
		// An IPv4 dotted quad is no ip6-network; an IPv4-mapped IPv6
		// address stays IPv6 here so it never matches an IPv4 client.
		if (addr_text.find(':') == std::string_view::npos) return malformed(error, "ip6 with an IPv4 address");
		IpAddr mapped;
		mapped.v6 = true;
		mapped.bytes[10] = 0xff;
		mapped.bytes[11] = 0xff;
		std::copy(addr->bytes.begin(), addr->bytes.begin() + 4, mapped.bytes.begin() + 12);
		addr = mapped;
	}
	d.network = *addr;
	if (slash != std::string_view::npos) {
		int& len = v6 ? d.cidr6 : d.cidr4;
		if (!parse_cidr_number(rest.substr(slash + 1), v6 ? 128 : 32, len))
			return malformed(error, "invalid cidr length in " + std::string(term));
	}
	return true;
}

bool parse_directive(std::string_view term, Directive& d, std::string& error) {
	std::string qualifier = take_qualifier(term, d);
	size_t name_end = 0;
	while (name_end < term.size() && is_ascii_alnum(term[name_end])) name_end++;
	std::string name = ascii_lower(term.substr(0, name_end));
	std::string_view rest = term.substr(name_end);

	if (name == "all") {
		d.mechanism = Mechanism::all;
		if (!rest.empty()) return malformed(error, "unexpected text after all");
		d.text = qualifier + "all";
		return true;
	}
	if (name == "include" || name == "exists") {
		d.mechanism = name == "include" ? Mechanism::include : Mechanism::exists;
		if (rest.empty() || rest[0] != ':') return malformed(error, name + " needs a domain-spec");
		d.domain_spec = std::string(rest.substr(1));
		if (!valid_domain_spec(d.domain_spec)) return malformed(error, "invalid domain-spec " + d.domain_spec);
		d.text = qualifier + name + ":" + d.domain_spec;
		return true;
	}
	if (name == "a" || name == "mx" || name == "ptr") {
		if (!parse_host_mechanism(name, rest, term, d, error)) return false;
		d.text = qualifier + name + (d.domain_spec.empty() ? "" : ":" + d.domain_spec) + cidr_text(d);
		return true;
	}
	if (name == "ip4" || name == "ip6") {
		if (!parse_ip_mechanism(name, rest, term, d, error)) return false;
		d.text = qualifier + name + ":" + d.network.to_string() + cidr_text(d);
		return true;
	}
	return malformed(error, "unknown mechanism " + std::string(term));
}

// RFC 7208 4.6: parses a whole record; any syntax error is a permerror
// before anything is evaluated.
bool parse_record(std::string_view txt, Record& record, std::string& error) {
	std::string_view rest = txt.substr(6);
	for (std::string_view term : split(rest, ' ')) {
		if (term.empty()) continue;
		// modifier = name "=" ... with name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
		size_t n = 0;
		if (is_ascii_alpha(term[0])) {
			n = 1;
			while (n < term.size() &&
			       (is_ascii_alnum(term[n]) || term[n] == '-' || term[n] == '_' || term[n] == '.'))
				n++;
		}
		if (n > 0 && n < term.size() && term[n] == '=') {
			std::string name = ascii_lower(term.substr(0, n));
			std::string value(term.substr(n + 1));
			if (name == "redirect" || name == "exp") {
				auto& slot = name == "redirect" ? record.redirect : record.explanation;
				// RFC 7208 6: each of these modifiers at most once.
				if (slot) {
					error = "malformed spf txt record: duplicate " + name + " modifier";
					return false;
				}
				if (!valid_domain_spec(value)) {
					error = "malformed spf txt record: invalid domain-spec " + value;
					return false;
				}
				slot = value;
			} else {
				// RFC 7208 6: unknown modifiers are ignored, but must be
				// syntactically valid.
				bool ends_with_macro = false;
				if (!valid_macro_string(value, ends_with_macro)) {
					error = "malformed spf txt record: invalid modifier " + std::string(term);
					return false;
				}
			}
			continue;
		}
		Directive d;
		if (!parse_directive(term, d, error)) return false;
		record.directives.push_back(std::move(d));
	}
	return true;
}

bool address_matches(const IpAddr& remote, const IpAddr& candidate, const Directive& d) {
	if (remote.v6 != candidate.v6) return false;
	int bits = remote.v6 ? (d.cidr6 >= 0 ? d.cidr6 : 128) : (d.cidr4 >= 0 ? d.cidr4 : 32);
	return remote.masked(bits) == candidate.masked(bits);
}

bool name_in_domain(const std::string& name, const std::string& domain) {
	return iequals(name, domain) ||
	    (name.size() > domain.size() && iends_with(name, "." + domain) && !domain.empty());
}

// ---------------------------------------------------------------- evaluation

struct Outcome {
	SpfStatus status = SpfStatus::none;
	std::string mechanism;
	std::string explanation;
	std::string problem;
};
using OutcomeFn = std::function<void(Outcome)>;

// One record being walked: its directives in order, then redirect.
struct RecordRun {
	std::shared_ptr<const Record> record;
	std::string domain;
	size_t index = 0;
	bool explain = false;  // false inside include (RFC 7208 6.2)
	OutcomeFn done;
};
using RunPtr = std::shared_ptr<RecordRun>;

// Holds everything one check_host() evaluation shares: the arguments, the
// lookup counters of RFC 7208 4.6.4 (shared across include and redirect), the
// validated PTR names, and the trampoline that runs continuations.
class Evaluation : public std::enable_shared_from_this<Evaluation> {
public:
	Evaluation(Resolver& resolver, uint64_t owner, SpfHostQuery query)
		: resolver_(resolver), owner_(owner), query_(std::move(query)) {
		if (query_.sender_localpart.empty()) query_.sender_localpart = "postmaster";  // RFC 7208 4.3
		if (query_.now == 0) query_.now = std::time(nullptr);
	}

	void start(SpfHostDone done) {
		auto self = shared_from_this();
		post([self, done = std::move(done)] {
			self->check_host(self->query_.domain, true, [done](Outcome o) {
				done(o.status, std::move(o.mechanism), std::move(o.explanation), std::move(o.problem));
			});
		});
	}

private:
	Resolver& resolver_;
	uint64_t owner_;
	SpfHostQuery query_;
	int dns_terms_ = 0;
	int void_lookups_ = 0;
	bool ptr_names_known_ = false;
	bool ptr_void_exceeded_ = false;
	std::vector<std::string> validated_ptr_names_;
	std::deque<std::function<void()>> ready_;
	bool draining_ = false;

	// Continuations run from this queue, never nested inside a resolver
	// callback that itself runs inside query(): the stack stays flat.
	void post(std::function<void()> fn) {
		ready_.push_back(std::move(fn));
		if (draining_) return;
		draining_ = true;
		while (!ready_.empty()) {
			auto next = std::move(ready_.front());
			ready_.pop_front();
			next();
		}
		draining_ = false;
	}

	void lookup(const std::string& name, RrType type, std::function<void(const DnsAnswer&)> k) {
		auto self = shared_from_this();
		resolver_.query(owner_, name, type, [self, k = std::move(k)](const DnsAnswer& answer) {
			self->post([k, answer] { k(answer); });
		});
	}

	RrType address_type() const { return query_.ip.v6 ? RrType::AAAA : RrType::A; }

	// RFC 7208 4.6.4: include, a, mx, ptr, exists and redirect query DNS.
	bool count_dns_term() { return ++dns_terms_ <= max_dns_terms; }

	// RFC 7208 4.6.4: an empty answer or NXDOMAIN is a void lookup; more than
	// two are a permerror. Returns false once the limit is exceeded.
	bool note_void(const DnsAnswer& answer) {
		if (answer.not_found()) ++void_lookups_;
		return void_lookups_ <= max_void_lookups;
	}

	SpfMacroContext macro_context(const std::string& domain, std::string validated_ptr) const {
		SpfMacroContext ctx;
		ctx.ip = query_.ip;
		ctx.sender_localpart = query_.sender_localpart;
		ctx.sender_domain = query_.sender_domain;
		ctx.domain = domain;
		ctx.helo = query_.helo;
		ctx.validated_ptr = std::move(validated_ptr);
		ctx.receiver = query_.receiver;
		ctx.now = query_.now;
		return ctx;
	}

	// RFC 7208 7.3 %{p}: a validated name equal to <domain>, else one below
	// it, else any validated name, else "unknown".
	std::string pick_validated_name(const std::string& domain) const {
		for (const auto& n : validated_ptr_names_)
			if (iequals(n, domain)) return n;
		for (const auto& n : validated_ptr_names_)
			if (name_in_domain(n, domain)) return n;
		if (!validated_ptr_names_.empty()) return validated_ptr_names_.front();
		return "unknown";
	}

	static bool uses_p_macro(std::string_view spec) {
		for (size_t i = 0; i + 2 < spec.size(); i++)
			if (spec[i] == '%' && spec[i + 1] == '{' && (spec[i + 2] | 0x20) == 'p') return true;
		return false;
	}

	// RFC 7208 5.5: reverse lookup of <ip>, then each of the first 10 names
	// is kept if one of its addresses is <ip>. Address lookup errors skip
	// the name; a PTR error leaves no names. Computed once per evaluation.
	// k(false) when the void-lookup limit was exceeded.
	void ensure_validated_names(std::function<void(bool)> k) {
		if (ptr_names_known_) {
			k(!ptr_void_exceeded_);
			return;
		}
		auto self = shared_from_this();
		lookup(reverse_dns_name(query_.ip), RrType::PTR, [self, k](const DnsAnswer& answer) {
			auto names = std::make_shared<std::vector<std::string>>();
			if (!self->note_void(answer)) {
				self->finish_validation(false, k);
				return;
			}
			if (answer.found()) {
				for (const auto& n : answer.records) {
					if (names->size() >= max_ptr_names)
						break;  // RFC 7208 4.6.4: ignore names beyond the first 10
					names->push_back(strip_trailing_dot(n));
				}
			}
			self->validate_name(names, 0, k);
		});
	}

	void validate_name(std::shared_ptr<std::vector<std::string>> names, size_t i, std::function<void(bool)> k) {
		if (i >= names->size()) {
			finish_validation(true, k);
			return;
		}
		auto self = shared_from_this();
		const std::string name = (*names)[i];
		lookup(name, address_type(), [self, names, i, k, name](const DnsAnswer& answer) {
			if (!self->note_void(answer)) {
				self->finish_validation(false, k);
				return;
			}
			if (answer.found()) {
				for (const auto& text : answer.records) {
					auto addr = IpAddr::parse(text);
					if (addr && *addr == self->query_.ip) {
						self->validated_ptr_names_.push_back(name);
						break;
					}
				}
			}
			self->validate_name(names, i + 1, k);
		});
	}

	void finish_validation(bool ok, const std::function<void(bool)>& k) {
		ptr_names_known_ = true;
		ptr_void_exceeded_ = !ok;
		k(ok);
	}

	// Expands a domain-spec into a DNS name (RFC 7208 7.3 truncation).
	// k(name, problem): name "" with a problem on errors.
	void expand_target(const std::string& spec, const std::string& domain,
	                   std::function<void(std::string, std::string)> k) {
		auto self = shared_from_this();
		auto expand = [self, spec, domain, k]() {
			auto ctx = self->macro_context(domain, self->pick_validated_name(domain));
			auto expanded = spf_expand_macros(spec, ctx, false);
			if (!expanded) {
				k("", "bad macro syntax in " + spec);
				return;
			}
			std::string name = truncate_expanded_name(*expanded);
			// A name made by expansion is only looked up: one label (a bare
			// HELO name, say) finds nothing and does not match, as the RFC
			// 7208 test suite has it; include and redirect refuse it when they
			// check the domain. Only what the DNS cannot carry is an error.
			if (name_labels(name) == 0) {
				k("", "invalid domain name " + *expanded);
				return;
			}
			k(name, "");
		};
		if (!uses_p_macro(spec)) {
			expand();
			return;
		}
		ensure_validated_names([k, expand](bool ok) {
			if (!ok) {
				k("", "too many void lookups");
				return;
			}
			expand();
		});
	}

	// RFC 7208 4: check_host() for one domain. `explain`: an "exp" of this
	// record may be used (not inside include).
	void check_host(const std::string& domain_in, bool explain, OutcomeFn done) {
		std::string domain = strip_trailing_dot(domain_in);
		// RFC 7208 4.3: a malformed or single-label domain gives none.
		if (!valid_domain(domain)) {
			done({SpfStatus::none, "", "", "spf: bad domain name " + domain});
			return;
		}
		auto self = shared_from_this();
		lookup(domain, RrType::TXT, [self, domain, explain, done](const DnsAnswer& answer) {
			// RFC 7208 4.4: NXDOMAIN or no records: none; other errors:
			// temperror. The texts are the model's, the name in its
			// absolute form.
			if (answer.not_found()) {
				done({SpfStatus::none, "", "", "spf: no txt record for " + domain + "."});
				return;
			}
			if (!answer.found()) {
				done({SpfStatus::temperror, "", "", "spf: lookup of dns record for " + domain});
				return;
			}
			const std::string* text = nullptr;
			for (const auto& txt : answer.records) {
				if (!is_spf_record(txt)) continue;
				// RFC 7208 4.5: more than one record is a permerror.
				if (text) {
					done({SpfStatus::permerror, "", "", "spf: multiple spf txt records in dns"});
					return;
				}
				text = &txt;
			}
			if (!text) {
				done({SpfStatus::none, "", "", "spf: no txt record"});
				return;
			}
			auto record = std::make_shared<Record>();
			std::string error;
			if (!parse_record(*text, *record, error)) {
				done({SpfStatus::permerror, "", "", "spf: " + error});
				return;
			}
			auto run = std::make_shared<RecordRun>();
			run->record = record;
			run->domain = domain;
			run->explain = explain;
			run->done = done;
			self->walk(run);
		});
	}

	// RFC 7208 4.6.2: directives left to right until one matches.
	void walk(const RunPtr& run) {
		const auto& directives = run->record->directives;
		while (run->index < directives.size()) {
			const Directive& d = directives[run->index];
			switch (d.mechanism) {
			case Mechanism::all: matched(run, d); return;
			case Mechanism::ip4:
			case Mechanism::ip6:
				if (address_matches(query_.ip, d.network, d)) {
					matched(run, d);
					return;
				}
				run->index++;
				continue;
			default: break;
			}
			if (!count_dns_term()) {
				run->done({SpfStatus::permerror, d.text, "", "spf: too many dns requests"});
				return;
			}
			switch (d.mechanism) {
			case Mechanism::include: do_include(run, d); break;
			case Mechanism::a: do_a(run, d); break;
			case Mechanism::mx: do_mx(run, d); break;
			case Mechanism::ptr: do_ptr(run, d); break;
			case Mechanism::exists: do_exists(run, d); break;
			default: break;
			}
			return;  // the mechanism continues the walk from its callback
		}
		do_redirect_or_default(run);
	}

	void next(const RunPtr& run) {
		run->index++;
		walk(run);
	}

	void matched(const RunPtr& run, const Directive& d) {
		if (d.result != SpfStatus::fail || !run->explain || !run->record->explanation) {
			run->done({d.result, d.text, "", ""});
			return;
		}
		std::string mechanism = d.text;
		explain(run, [run, mechanism](std::string explanation) {
			run->done({SpfStatus::fail, mechanism, std::move(explanation), ""});
		});
	}

	// RFC 7208 6.2: the exp= name's single TXT record, macro-expanded with
	// c, r and t allowed. Any problem means no explanation. Not counted
	// toward the lookup limits.
	void explain(const RunPtr& run, std::function<void(std::string)> k) {
		auto self = shared_from_this();
		const std::string spec = *run->record->explanation;
		const std::string domain = run->domain;
		auto fetch = [self, spec, domain, k]() {
			auto ctx = self->macro_context(domain, self->pick_validated_name(domain));
			auto expanded = spf_expand_macros(spec, ctx, false);
			std::string name = expanded ? truncate_expanded_name(*expanded) : "";
			if (name.empty() || !valid_domain(name)) {
				k("");
				return;
			}
			self->lookup(name, RrType::TXT, [self, domain, k](const DnsAnswer& answer) {
				if (!answer.found() || answer.records.size() != 1) {
					k("");
					return;
				}
				// The explanation text may use %{p} even when the exp
				// domain-spec did not (RFC 7208 6.2, 7.3).
				std::string text = answer.records.front();
				auto expand_text = [self, domain, text, k]() {
					auto ctx = self->macro_context(domain, self->pick_validated_name(domain));
					auto expanded = spf_expand_macros(text, ctx, true);
					k(expanded ? usable_explanation(std::move(*expanded)) : "");
				};
				if (!uses_p_macro(text)) {
					expand_text();
					return;
				}
				self->ensure_validated_names([expand_text](bool) { expand_text(); });
			});
		};
		if (!uses_p_macro(spec)) {
			fetch();
			return;
		}
		ensure_validated_names([fetch](bool) { fetch(); });
	}

	// Target of a, mx, ptr: the expanded domain-spec or the current domain.
	void mechanism_target(const RunPtr& run, const Directive& d, std::function<void(std::string)> k) {
		if (d.domain_spec.empty()) {
			k(run->domain);
			return;
		}
		std::string text = d.text;
		expand_target(d.domain_spec, run->domain, [run, text, k](std::string name, std::string problem) {
			if (name.empty()) {
				run->done({SpfStatus::permerror, text, "", "spf: " + problem});
				return;
			}
			k(name);
		});
	}

	// RFC 7208 5.2: include matches on pass, not on fail/softfail/neutral;
	// temperror propagates; permerror and none become permerror.
	void do_include(const RunPtr& run, const Directive& d) {
		auto self = shared_from_this();
		std::string text = d.text;
		expand_target(d.domain_spec, run->domain, [self, run, text](std::string name, std::string problem) {
			if (name.empty()) {
				run->done({SpfStatus::permerror, text, "", "spf: " + problem});
				return;
			}
			self->check_host(name, false, [self, run, text, name](Outcome inner) {
				switch (inner.status) {
				case SpfStatus::pass: self->matched(run, run->record->directives[run->index]); return;
				case SpfStatus::fail:
				case SpfStatus::softfail:
				case SpfStatus::neutral: self->next(run); return;
				case SpfStatus::temperror:
					run->done({SpfStatus::temperror, text, "",
					           "spf: include " + name + ": " + inner.problem});
					return;
				case SpfStatus::permerror:
				case SpfStatus::none:
					run->done({SpfStatus::permerror, text, "",
					           "spf: include " + name + " resulted in " +
					               spf_status_name(inner.status) +
					               (inner.problem.empty() ? "" : ": " + inner.problem)});
					return;
				}
			});
		});
	}

	// Looks up the addresses of `host` and reports whether one matches with
	// the directive's CIDR lengths. k(match) or a finished run on errors.
	void host_matches(const RunPtr& run, const Directive& d, const std::string& host, std::function<void(bool)> k) {
		auto self = shared_from_this();
		std::string text = d.text;
		const Directive* dp = &d;  // the record outlives the run
		lookup(host, address_type(), [self, run, text, dp, host, k](const DnsAnswer& answer) {
			if (!self->note_void(answer)) {
				run->done({SpfStatus::permerror, text, "", "spf: too many void lookups"});
				return;
			}
			if (!answer.found() && !answer.not_found()) {
				run->done({SpfStatus::temperror, text, "", "spf: lookup of " + host + " failed"});
				return;
			}
			for (const auto& t : answer.records) {
				auto addr = IpAddr::parse(t);
				if (addr && address_matches(self->query_.ip, *addr, *dp)) {
					k(true);
					return;
				}
			}
			k(false);
		});
	}

	// RFC 7208 5.3.
	void do_a(const RunPtr& run, const Directive& d) {
		auto self = shared_from_this();
		const Directive* dp = &d;
		mechanism_target(run, d, [self, run, dp](std::string host) {
			self->host_matches(run, *dp, host, [self, run, dp](bool match) {
				if (match)
					self->matched(run, *dp);
				else
					self->next(run);
			});
		});
	}

	// RFC 7208 5.4, with the 10-name limit of 4.6.4.
	void do_mx(const RunPtr& run, const Directive& d) {
		auto self = shared_from_this();
		const Directive* dp = &d;
		mechanism_target(run, d, [self, run, dp](std::string host) {
			self->lookup(host, RrType::MX, [self, run, dp](const DnsAnswer& answer) {
				if (!self->note_void(answer)) {
					run->done({SpfStatus::permerror, dp->text, "", "spf: too many void lookups"});
					return;
				}
				if (!answer.found() && !answer.not_found()) {
					run->done({SpfStatus::temperror, dp->text, "", "spf: mx lookup failed"});
					return;
				}
				auto hosts = std::make_shared<std::vector<std::string>>();
				std::vector<MxRecord> mx = answer.mx;
				std::stable_sort(mx.begin(), mx.end(), [](const MxRecord& a, const MxRecord& b) {
					return a.preference < b.preference;
				});
				for (const auto& r : mx)
					if (!r.host.empty())  // RFC 7505 null MX: no host
						hosts->push_back(strip_trailing_dot(r.host));
				if (hosts->size() > max_mx_names) {
					run->done({SpfStatus::permerror, dp->text, "", "spf: too many mx names"});
					return;
				}
				self->mx_host(run, *dp, hosts, 0);
			});
		});
	}

	void mx_host(const RunPtr& run, const Directive& d, std::shared_ptr<std::vector<std::string>> hosts, size_t i) {
		if (i >= hosts->size()) {
			next(run);
			return;
		}
		auto self = shared_from_this();
		const Directive* dp = &d;
		host_matches(run, d, (*hosts)[i], [self, run, dp, hosts, i](bool match) {
			if (match)
				self->matched(run, *dp);
			else
				self->mx_host(run, *dp, hosts, i + 1);
		});
	}

	// RFC 7208 5.5: a validated name equal to or below the target.
	void do_ptr(const RunPtr& run, const Directive& d) {
		auto self = shared_from_this();
		const Directive* dp = &d;
		mechanism_target(run, d, [self, run, dp](std::string target) {
			self->ensure_validated_names([self, run, dp, target](bool ok) {
				if (!ok) {
					run->done({SpfStatus::permerror, dp->text, "", "spf: too many void lookups"});
					return;
				}
				for (const auto& n : self->validated_ptr_names_) {
					if (name_in_domain(n, target)) {
						self->matched(run, *dp);
						return;
					}
				}
				self->next(run);
			});
		});
	}

	// RFC 7208 5.7: an A lookup, whatever the client's address family.
	void do_exists(const RunPtr& run, const Directive& d) {
		auto self = shared_from_this();
		const Directive* dp = &d;
		expand_target(d.domain_spec, run->domain, [self, run, dp](std::string name, std::string problem) {
			if (name.empty()) {
				run->done({SpfStatus::permerror, dp->text, "", "spf: " + problem});
				return;
			}
			self->lookup(name, RrType::A, [self, run, dp](const DnsAnswer& answer) {
				if (!self->note_void(answer)) {
					run->done({SpfStatus::permerror, dp->text, "", "spf: too many void lookups"});
					return;
				}
				if (!answer.found() && !answer.not_found()) {
					run->done({SpfStatus::temperror, dp->text, "", "spf: exists lookup failed"});
					return;
				}
				if (answer.found() && !answer.records.empty())
					self->matched(run, *dp);
				else
					self->next(run);
			});
		});
	}

	// RFC 7208 6.1 redirect after no directive matched; otherwise the default
	// result neutral (RFC 7208 4.7).
	void do_redirect_or_default(const RunPtr& run) {
		if (!run->record->redirect) {
			run->done({SpfStatus::neutral, "default", "", ""});
			return;
		}
		if (!count_dns_term()) {
			run->done({SpfStatus::permerror, "", "", "spf: too many dns requests"});
			return;
		}
		auto self = shared_from_this();
		expand_target(*run->record->redirect, run->domain, [self, run](std::string name, std::string problem) {
			if (name.empty()) {
				run->done({SpfStatus::permerror, "", "", "spf: redirect: " + problem});
				return;
			}
			// The target's own exp applies, not ours (RFC 7208 6.2).
			self->check_host(name, run->explain, [run, name](Outcome o) {
				if (o.status == SpfStatus::none) {
					run->done({SpfStatus::permerror, o.mechanism, "",
					           "spf: redirect to " + name + " without spf record"});
					return;
				}
				run->done(std::move(o));
			});
		});
	}
};

// ---------------------------------------------------------------- header

// RFC 7208 9.1 key-value pair values are dot-atoms or quoted strings
// (RFC 5322 3.2.3, 3.2.4).
std::string quoted_string(std::string_view s) {
	std::string out = "\"";
	for (unsigned char c : s) {
		if (c == '"' || c == '\\') {
			out += '\\';
			out += static_cast<char>(c);
		} else if (c == ' ' || c == '\t' || (c > ' ' && c != 0x7f)) {
			out += static_cast<char>(c);
		}
		// Other control characters cannot appear in a header value: dropped.
	}
	return out + "\"";
}

std::string header_value(std::string_view s) {
	if (s.empty()) return quoted_string(s);
	static const std::string_view atext_specials = "!#$%&'*+-/=?^_`{|}~";
	for (size_t i = 0; i < s.size(); i++) {
		unsigned char c = static_cast<unsigned char>(s[i]);
		if (is_ascii_alnum(static_cast<char>(c)) || c > 0x7f ||
		    atext_specials.find(static_cast<char>(c)) != std::string_view::npos)
			continue;
		if (c == '.' && i > 0 && i + 1 < s.size()) continue;
		return quoted_string(s);
	}
	return std::string(s);
}

}  // namespace

const char* spf_status_name(SpfStatus s) {
	switch (s) {
	case SpfStatus::none: return "none";
	case SpfStatus::neutral: return "neutral";
	case SpfStatus::pass: return "pass";
	case SpfStatus::fail: return "fail";
	case SpfStatus::softfail: return "softfail";
	case SpfStatus::temperror: return "temperror";
	case SpfStatus::permerror: return "permerror";
	}
	return "none";
}

const char* spf_identity_name(SpfReceived::Identity identity) {
	switch (identity) {
	case SpfReceived::Identity::mailfrom: return "mailfrom";
	case SpfReceived::Identity::helo: return "helo";
	case SpfReceived::Identity::none: return "";
	}
	return "";
}

std::string SpfReceived::header() const {
	// RFC 7208 9.1; the model's field order.
	message::HeaderBuilder b("Received-SPF");
	b.add(spf_status_name(result));
	if (!comment.empty()) b.add("(" + comment + ")");
	b.add("client-ip=" + header_value(client_ip.to_string()) + ";");
	b.add("envelope-from=" + header_value(envelope_from) + ";");
	b.add("helo=" + header_value(helo) + ";");
	if (!problem.empty()) {
		// Keep the problem on one folded line.
		constexpr size_t max_problem = 77 - 10;  // minus "problem=; "
		b.add("problem=" + header_value(std::string_view(problem).substr(0, max_problem)) + ";");
	}
	if (!mechanism.empty()) b.add("mechanism=" + header_value(mechanism) + ";");
	b.add("receiver=" + header_value(receiver) + ";");
	b.add(std::string("identity=") + header_value(spf_identity_name(identity)));
	return b.finish();
}

std::optional<std::string> spf_expand_macros(std::string_view text, const SpfMacroContext& ctx, bool for_exp) {
	std::string out;
	size_t i = 0;
	while (i < text.size()) {
		char c = text[i];
		if (c != '%') {
			out += c;
			i++;
			continue;
		}
		if (i + 1 >= text.size()) return std::nullopt;
		char n = text[i + 1];
		if (n == '%') {
			out += '%';
			i += 2;
			continue;
		}
		if (n == '_') {
			out += ' ';
			i += 2;
			continue;
		}
		if (n == '-') {
			out += "%20";
			i += 2;
			continue;
		}
		if (n != '{') return std::nullopt;
		MacroExpand m;
		size_t pos = i + 1;
		if (!parse_macro_expand(text, pos, m)) return std::nullopt;
		i = pos;
		std::string localpart = ctx.sender_localpart.empty() ? "postmaster" : ctx.sender_localpart;
		std::string value;
		switch (m.letter) {
		case 's': value = localpart + "@" + ctx.sender_domain; break;
		case 'l': value = localpart; break;
		case 'o': value = ctx.sender_domain; break;
		case 'd': value = ctx.domain; break;
		case 'i': value = macro_ip(ctx.ip); break;
		case 'p': value = ctx.validated_ptr.empty() ? "unknown" : ctx.validated_ptr; break;
		case 'v': value = ctx.ip.v6 ? "ip6" : "in-addr"; break;
		case 'h': value = ctx.helo; break;
		// RFC 7208 7.2: c, r and t only in "exp" text.
		case 'c':
			if (!for_exp) return std::nullopt;
			value = ctx.ip.to_string();
			break;
		case 'r':
			if (!for_exp) return std::nullopt;
			value = ctx.receiver.empty() ? "unknown" : ctx.receiver;
			break;
		case 't':
			if (!for_exp) return std::nullopt;
			value = std::to_string(static_cast<long long>(ctx.now));
			break;
		default: return std::nullopt;
		}
		value = apply_transformers(value, m);
		if (m.upper) value = url_escape(value);
		out += value;
	}
	return out;
}

void spf_check_host(Resolver& resolver, uint64_t owner, SpfHostQuery query, SpfHostDone done) {
	auto evaluation = std::make_shared<Evaluation>(resolver, owner, std::move(query));
	evaluation->start(std::move(done));
}

void spf_check_host(Resolver& resolver, uint64_t owner, const IpAddr& ip, const std::string& domain,
                    const std::string& sender_localpart, const std::string& sender_domain, const std::string& helo,
                    SpfHostDone done) {
	SpfHostQuery q;
	q.ip = ip;
	q.domain = domain;
	q.sender_localpart = sender_localpart;
	q.sender_domain = sender_domain;
	q.helo = helo;
	spf_check_host(resolver, owner, std::move(q), std::move(done));
}

void spf_verify(Resolver& resolver, uint64_t owner, const SpfArgs& args, SpfVerifyDone done) {
	std::string helo_text = args.helo_ip ? args.helo_ip->to_string() : args.helo_domain;

	SpfReceived received;
	received.client_ip = args.remote_ip;
	received.helo = helo_text;
	received.receiver = args.local_hostname;

	// The model prefers MAIL FROM; only a null reverse path falls back to the
	// HELO name with localpart "postmaster" (RFC 7208 2.3, 2.4).
	bool from_helo = args.mailfrom_domain.empty();
	if (from_helo && args.helo_domain.empty()) {
		received.result = SpfStatus::none;
		received.comment = "no domain, ehlo is an ip literal and mailfrom is empty";
		// The model has no sender localpart here: "@" plus the address.
		received.envelope_from = "@" + helo_text;
		received.identity = SpfReceived::Identity::none;
		done(std::move(received), "", false);
		return;
	}

	SpfHostQuery q;
	q.ip = args.remote_ip;
	q.sender_localpart = from_helo ? "postmaster" : args.mailfrom_localpart;
	q.sender_domain = from_helo ? args.helo_domain : args.mailfrom_domain;
	q.domain = q.sender_domain;
	q.helo = helo_text;
	q.receiver = args.local_hostname;
	q.now = args.now;

	received.comment = "domain " + q.domain;
	if (from_helo) received.comment += ", from ehlo because mailfrom is empty";
	// RFC 7208 9.1: envelope-from is the "sender" that was checked, its
	// localpart quoted when it needs to be, as the model writes it.
	smtp::Address sender;
	sender.localpart = q.sender_localpart;
	sender.domain.ascii = q.sender_domain;
	received.envelope_from = sender.to_ascii_string();
	received.identity = from_helo ? SpfReceived::Identity::helo : SpfReceived::Identity::mailfrom;

	// RFC 7208 2.3, 4.3: an identity that is no fully qualified domain name
	// (a bare "localhost", a HELO with a space) has no SPF policy.
	if (!valid_identity_domain(q.domain)) {
		received.result = SpfStatus::none;
		received.problem = "spf: bad domain name " + q.domain;
		done(std::move(received), "", false);
		return;
	}

	spf_check_host(resolver, owner, std::move(q),
	               [received, done](SpfStatus status, std::string mechanism, std::string explanation,
	                                std::string problem) mutable {
			       received.result = status;
			       received.mechanism = std::move(mechanism);
			       received.problem = std::move(problem);
			       // Our resolver does not report DNSSEC validation.
			       done(std::move(received), std::move(explanation), false);
		       });
}

}  // namespace tern::mailauth
