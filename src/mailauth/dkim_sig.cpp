// Parsing DKIM-Signature fields (RFC 6376 3.5) and key records (3.6.1).
#include <set>

#include "mailauth/dkim.h"
#include "mailauth/dkim_internal.h"
#include "smtp/parser.h"
#include "util/base64.h"
#include "util/strings.h"

namespace tern::mailauth::dkim {

namespace {

bool is_fws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim_fws(std::string_view s) {
	while (!s.empty() && is_fws(s.front())) s.remove_prefix(1);
	while (!s.empty() && is_fws(s.back())) s.remove_suffix(1);
	return s;
}

std::string strip_fws(std::string_view s) {
	std::string out;
	for (char c : s)
		if (!is_fws(c)) out += c;
	return out;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// One tag=value of a tag-list (RFC 6376 3.2).
struct Tag {
	std::string name;
	std::string_view value;  // FWS around it trimmed
	size_t value_begin = 0;  // offsets in the parsed text: just after '='
	size_t value_end = 0;    // ... up to the ';' or the end
};

// Splits a tag-list. Values cannot contain ';', so splitting on it is exact.
bool split_tags(std::string_view text, std::vector<Tag>& tags, std::string& error) {
	size_t pos = 0;
	while (pos <= text.size()) {
		size_t semi = text.find(';', pos);
		size_t end = semi == std::string_view::npos ? text.size() : semi;
		std::string_view spec = text.substr(pos, end - pos);
		if (trim_fws(spec).empty()) {
			// Only the last tag-spec may be empty: "a=b;" (trailing ';').
			if (semi == std::string_view::npos) break;
			error = "empty tag-spec";
			return false;
		}
		size_t eq = spec.find('=');
		if (eq == std::string_view::npos) {
			error = "missing '=' in tag " + quoted(trim_fws(spec));
			return false;
		}
		std::string_view name = trim_fws(spec.substr(0, eq));
		// tag-name = ALPHA *ALNUMPUNC
		bool ok = !name.empty() && is_ascii_alpha(name[0]);
		for (char c : name) ok = ok && (is_ascii_alpha(c) || is_ascii_digit(c) || c == '_');
		if (!ok) {
			error = "bad tag name " + quoted(name);
			return false;
		}
		Tag tag;
		tag.name = std::string(name);
		tag.value = trim_fws(spec.substr(eq + 1));
		for (char c : tag.value) {
			// VALCHAR is %x21-3A / %x3C-7E; FWS may separate tvals. UTF-8
			// is tolerated (RFC 6376 does not forbid it in every tag).
			if (static_cast<unsigned char>(c) < 0x21 && !is_fws(c)) {
				error = "invalid character in value of tag " + quoted(name);
				return false;
			}
		}
		tag.value_begin = pos + eq + 1;
		tag.value_end = end;
		tags.push_back(std::move(tag));
		if (semi == std::string_view::npos) break;
		pos = semi + 1;
	}
	return true;
}

std::optional<int64_t> parse_number(std::string_view s, size_t max_digits) {
	// 18 digits always fit int64_t; longer values are refused before they
	// can overflow (found by fuzzing: l=99999999999999999999).
	if (s.empty() || s.size() > max_digits || s.size() > 18) return std::nullopt;
	int64_t v = 0;
	for (char c : s) {
		if (!is_ascii_digit(c)) return std::nullopt;
		v = v * 10 + (c - '0');
	}
	return v;
}

// Colon-separated list, FWS allowed around the colons.
std::vector<std::string> colon_list(std::string_view value) {
	std::vector<std::string> out;
	for (std::string_view part : split(value, ':')) out.push_back(std::string(trim_fws(part)));
	return out;
}

// A d=, s= or i= domain as it is looked up and compared: lower-case, and
// a name beyond ASCII (RFC 8616 4) in its A-label form. Nothing when it is
// no name: beyond ASCII that is whatever IDNA does not take (invalid UTF-8
// among it), so raw bytes never reach the DNS.
std::optional<std::string> lookup_name(std::string_view d) {
	if (d.empty() || d.front() == '.' || d.back() == '.') return std::nullopt;
	if (!is_ascii(d)) {
		std::optional<smtp::Domain> parsed = smtp::parse_domain(ascii_lower(d));
		if (!parsed) return std::nullopt;
		return parsed->ascii;
	}
	for (size_t i = 0; i < d.size(); i++) {
		unsigned char c = d[i];
		bool ok = is_ascii_alpha(c) || is_ascii_digit(c) || c == '-' || c == '_' ||
		    (c == '.' && d[i - 1] != '.');
		if (!ok) return std::nullopt;
	}
	return ascii_lower(d);
}

bool is_hyphenated_word(std::string_view w) {
	// RFC 6376 3.2 hyphenated-word = ALPHA [ *(ALPHA / DIGIT / "-") (ALPHA / DIGIT) ]
	if (w.empty() || !is_ascii_alpha(w.front()) || w.back() == '-') return false;
	for (char c : w)
		if (!is_ascii_alpha(c) && !is_ascii_digit(c) && c != '-') return false;
	return true;
}

std::optional<Canon> canon_word(std::string_view w) {
	if (w == "simple") return Canon::simple;
	if (w == "relaxed") return Canon::relaxed;
	return std::nullopt;
}

}  // namespace

std::string identity_domain(const Signature& sig) {
	if (!sig.identity) return "";
	return lookup_name(sig.identity->substr(sig.identity->rfind('@') + 1)).value_or("");
}

std::string_view status_name(Status s) {
	switch (s) {
	case Status::none: return "none";
	case Status::pass: return "pass";
	case Status::fail: return "fail";
	case Status::policy: return "policy";
	case Status::neutral: return "neutral";
	case Status::temperror: return "temperror";
	case Status::permerror: return "permerror";
	}
	return "permerror";
}

std::optional<Canon> Signature::header_canon() const {
	size_t slash = canonicalization.find('/');
	return canon_word(std::string_view(canonicalization).substr(0, slash));
}

std::optional<Canon> Signature::body_canon() const {
	// RFC 6376 3.5 c=: "If only one algorithm is named, that algorithm is
	// used for the header and "simple" is used for the body."
	size_t slash = canonicalization.find('/');
	if (slash == std::string::npos) return Canon::simple;
	return canon_word(std::string_view(canonicalization).substr(slash + 1));
}

std::optional<HashAlg> Signature::hash() const {
	if (hash_algorithm == "sha256") return HashAlg::sha256;
	if (hash_algorithm == "sha1") return HashAlg::sha1;
	return std::nullopt;
}

namespace {

// Why a signature field was refused: the code and the text of SignatureParse.
struct SigFault {
	SigError code;
	std::string text;
};
using TagCheck = std::optional<SigFault>;

TagCheck syntax_fault(std::string text) { return SigFault{SigError::syntax, std::move(text)}; }

// a=: sig-a-tag-k "-" sig-a-tag-h (RFC 6376 3.5).
TagCheck apply_algorithm_tag(std::string_view v, Signature& sig) {
	size_t dash = v.find('-');
	std::string_view ka = v.substr(0, dash);
	std::string_view ha = dash == std::string_view::npos ? std::string_view{} : v.substr(dash + 1);
	auto word = [](std::string_view w) {
		if (w.empty() || !is_ascii_alpha(w[0])) return false;
		for (char c : w)
			if (!is_ascii_alpha(c) && !is_ascii_digit(c)) return false;
		return true;
	};
	if (!word(ka) || !word(ha)) return syntax_fault("bad algorithm " + quoted(v));
	sig.sign_algorithm = ascii_lower(ka);
	sig.hash_algorithm = ascii_lower(ha);
	return std::nullopt;
}

// b= and bh=: base64 with FWS anywhere; the b= value's place in the field is
// kept for hashing the field without it (RFC 6376 3.7).
TagCheck apply_base64_tag(const Tag& tag, Signature& sig, size_t& b_begin, size_t& b_end) {
	const std::string& k = tag.name;
	std::string b64 = strip_fws(tag.value);
	auto decoded = base64_decode(b64);
	if (!decoded || (k == "b" && decoded->empty())) return syntax_fault("bad base64 in " + k + "=");
	if (k == "b") {
		sig.signature = std::move(*decoded);
		sig.signature_base64 = b64;
		b_begin = tag.value_begin;
		b_end = tag.value_end;
	} else {
		sig.body_hash = std::move(*decoded);
	}
	return std::nullopt;
}

// c=: header[/body] canonicalization words.
TagCheck apply_canonicalization_tag(std::string_view v, Signature& sig) {
	std::string c = ascii_lower(v);
	size_t slash = c.find('/');
	bool ok = is_hyphenated_word(std::string_view(c).substr(0, slash));
	if (slash != std::string::npos) ok = ok && is_hyphenated_word(std::string_view(c).substr(slash + 1));
	if (!ok) return syntax_fault("bad canonicalization " + quoted(v));
	sig.canonicalization = c;
	return std::nullopt;
}

// h=: colon-separated header field names.
TagCheck apply_signed_headers_tag(std::string_view v, Signature& sig) {
	for (std::string& h : colon_list(v)) {
		if (h.empty()) return syntax_fault("empty header name in h=");
		for (unsigned char c : h)
			if (c <= ' ' || c >= 0x7f) return syntax_fault("bad header name in h=");
		sig.signed_headers.push_back(std::move(h));
	}
	return std::nullopt;
}

// The tags with a one-line rule: d= i= l= q= s= t= x= z=.
TagCheck apply_simple_tag(const std::string& k, std::string_view v, Signature& sig) {
	if (k == "d") {
		std::optional<std::string> name = lookup_name(v);
		if (!name) return syntax_fault("bad domain " + quoted(v));
		sig.domain = std::move(*name);
	} else if (k == "i") {
		size_t at = v.rfind('@');
		if (at == std::string_view::npos || !lookup_name(v.substr(at + 1)))
			return syntax_fault("bad identity " + quoted(v));
		sig.identity = std::string(v);
	} else if (k == "l") {
		auto n = parse_number(v, 76);
		if (!n || v.size() > 18) return syntax_fault("bad length " + quoted(v));
		sig.length = *n;
	} else if (k == "q") {
		sig.query_methods = colon_list(v);
	} else if (k == "s") {
		std::optional<std::string> name = lookup_name(v);
		if (!name) return syntax_fault("bad selector " + quoted(v));
		sig.selector = std::move(*name);
	} else if (k == "t" || k == "x") {
		auto n = parse_number(v, 12);
		if (!n) return syntax_fault("bad timestamp in " + k + "=");
		(k == "t" ? sig.sign_time : sig.expire_time) = *n;
	} else if (k == "z") {
		std::string copied = strip_fws(v);
		for (std::string_view part : split(copied, '|')) sig.copied_headers.push_back(std::string(part));
	}
	// RFC 6376 3.2: unknown tags are ignored.
	return std::nullopt;
}

TagCheck apply_tag(const Tag& tag, Signature& sig, size_t& b_begin, size_t& b_end) {
	const std::string& k = tag.name;
	std::string_view v = tag.value;
	if (k == "v") {
		auto n = parse_number(v, 9);
		if (!n) return syntax_fault("bad version " + quoted(v));
		if (*n != 1)
			return SigFault{SigError::unknown_version, "unknown version: version " + std::to_string(*n)};
		sig.version = 1;
		return std::nullopt;
	}
	if (k == "a") return apply_algorithm_tag(v, sig);
	if (k == "b" || k == "bh") return apply_base64_tag(tag, sig, b_begin, b_end);
	if (k == "c") return apply_canonicalization_tag(v, sig);
	if (k == "h") return apply_signed_headers_tag(v, sig);
	return apply_simple_tag(k, v, sig);
}

// The rules across tags, once every tag is read.
TagCheck check_signature(const Signature& sig, const std::set<std::string>& seen) {
	// RFC 6376 6.1.1: required tags.
	for (const char* req : {"v", "a", "b", "bh", "d", "h", "s"}) {
		if (!seen.count(req)) return SigFault{SigError::missing_tag, "missing required tag: " + quoted(req)};
	}
	if (sig.hash_algorithm == "sha1" && sig.body_hash.size() != 20)
		return SigFault{SigError::bad_body_hash_size,
		                "bad body hash size given algorithm: got " + std::to_string(sig.body_hash.size()) +
		                    " bytes, must be 20 for sha1"};
	if (sig.hash_algorithm == "sha256" && sig.body_hash.size() != 32)
		return SigFault{SigError::bad_body_hash_size,
		                "bad body hash size given algorithm: got " + std::to_string(sig.body_hash.size()) +
		                    " bytes, must be 32 for sha256"};
	// RFC 6376 3.5 x=: "the value of the "x=" tag MUST be greater than the
	// value of the "t=" tag if both are present".
	if (sig.sign_time && sig.expire_time && *sig.sign_time >= *sig.expire_time)
		return SigFault{SigError::timestamps,
		                "signature timestamp (t=) must be before signature expiration (x=)"};
	if (sig.identity) {
		std::string idom = identity_domain(sig);
		if (idom != sig.domain && !iends_with(idom, "." + sig.domain))
			return SigFault{SigError::identity_domain,
			                "identity domain (i=) not under domain (d=): identity domain " + quoted(idom) +
			                    " not under domain " + quoted(sig.domain)};
	}
	return std::nullopt;
}

std::string_view field_without_line_end(std::string_view raw) {
	if (raw.size() >= 2 && raw.substr(raw.size() - 2) == "\r\n")
		raw.remove_suffix(2);
	else if (!raw.empty() && raw.back() == '\n')
		raw.remove_suffix(1);
	return raw;
}

// The colon after the field name; npos when the name is not DKIM-Signature.
size_t dkim_signature_colon(std::string_view raw) {
	size_t colon = raw.find(':');
	if (colon == std::string_view::npos) return colon;
	std::string_view name = raw.substr(0, colon);
	while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
	return iequals(name, "DKIM-Signature") ? colon : std::string_view::npos;
}

}  // namespace

SignatureParse parse_signature(std::string_view field_raw) {
	SignatureParse result;
	auto fail = [&](SigFault fault) {
		result.code = fault.code;
		result.error = std::move(fault.text);
		result.signature.reset();
		return result;
	};

	std::string_view raw = field_without_line_end(field_raw);
	size_t colon = dkim_signature_colon(raw);
	if (colon == std::string_view::npos) return fail({SigError::not_dkim_signature, "not DKIM-Signature header"});

	std::vector<Tag> tags;
	std::string error;
	std::string_view text = raw.substr(colon + 1);
	if (!split_tags(text, tags, error)) return fail({SigError::syntax, error});

	Signature sig;
	std::set<std::string> seen;
	size_t b_begin = 0, b_end = 0;
	for (const Tag& tag : tags) {
		// RFC 6376 3.2: tags are case-sensitive, duplicates are an error.
		if (!seen.insert(tag.name).second)
			return fail({SigError::duplicate_tag, "duplicate tag: " + quoted(tag.name)});
		if (auto fault = apply_tag(tag, sig, b_begin, b_end)) return fail(std::move(*fault));
	}
	if (auto fault = check_signature(sig, seen)) return fail(std::move(*fault));

	// RFC 6376 3.7: the b= value, with the FWS around it, is left out of the
	// signature field when it is hashed.
	size_t offset = colon + 1;
	sig.header_without_b = std::string(raw.substr(0, offset + b_begin)) + std::string(raw.substr(offset + b_end));
	result.signature = std::move(sig);
	return result;
}

bool Key::testing() const {
	for (const std::string& f : flags)
		if (iequals(f, "y")) return true;
	return false;
}

bool Key::strict_identity() const {
	for (const std::string& f : flags)
		if (iequals(f, "s")) return true;
	return false;
}

bool Key::service_allowed(std::string_view service) const {
	if (services.empty()) return true;
	for (const std::string& s : services)
		if (s == "*" || iequals(s, service)) return true;
	return false;
}

KeyParse parse_key_record(std::string_view txt) {
	KeyParse result;
	std::vector<Tag> tags;
	std::string error;
	if (!split_tags(txt, tags, error)) {
		// Still DKIM if it announced itself as such.
		result.is_dkim = !tags.empty() && tags[0].name == "v" && tags[0].value == "DKIM1";
		result.error = error;
		return result;
	}
	auto fail = [&](std::string text) {
		result.error = std::move(text);
		result.key.reset();
		return result;
	};
	result.is_dkim = true;
	Key key;
	std::set<std::string> seen;
	for (size_t i = 0; i < tags.size(); i++) {
		const Tag& tag = tags[i];
		std::string_view v = tag.value;
		if (!seen.insert(tag.name).second) return fail("duplicate tag: " + quoted(tag.name));
		if (tag.name == "v") {
			// RFC 6376 3.6.1: v= is optional, but if present must be first
			// and exactly "DKIM1".
			if (v != "DKIM1") {
				result.is_dkim = false;
				return fail("bad version " + quoted(v));
			}
			if (i != 0) return fail("first field must be version");
		} else if (tag.name == "h") {
			key.hashes = colon_list(v);
		} else if (tag.name == "k") {
			key.key_type = ascii_lower(v);
		} else if (tag.name == "n") {
			key.notes = std::string(v);
		} else if (tag.name == "p") {
			std::string b64 = strip_fws(v);
			if (!b64.empty()) {
				auto decoded = base64_decode(b64);
				if (!decoded) return fail("bad public key: invalid base64");
				key.public_key = std::move(*decoded);
			}
		} else if (tag.name == "s") {
			key.services = colon_list(v);
		} else if (tag.name == "t") {
			key.flags = colon_list(v);
		}
	}
	if (!seen.count("p")) return fail("missing field: public key");
	if (key.key_type == "rsa") {
		if (!key.public_key.empty()) {
			key.rsa_bits = detail::rsa_public_key_bits(key.public_key);
			if (key.rsa_bits == 0) return fail("bad public key: not an RSA public key");
		}
	} else if (key.key_type == "ed25519") {
		// RFC 8463 4: the raw 32-byte public key.
		if (!key.public_key.empty() && key.public_key.size() != 32)
			return fail("bad public key: got " + std::to_string(key.public_key.size()) + " bytes, need 32");
	} else {
		return fail("unknown algorithm: " + quoted(key.key_type));
	}
	result.key = std::move(key);
	return result;
}

}  // namespace tern::mailauth::dkim
