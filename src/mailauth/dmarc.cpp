// DMARC (RFC 7489) record parsing, policy discovery, alignment and verdict,
// see dmarc.h.
#include "mailauth/dmarc.h"

#include <charconv>
#include <random>
#include <set>
#include <utility>

#include "mailauth/publicsuffix.h"
#include "util/random.h"
#include "util/strings.h"

namespace tern::mailauth {

namespace {


std::optional<DmarcPolicy> parse_policy(std::string_view value) {
	std::string v = ascii_lower(value);
	if (v == "none") return DmarcPolicy::none;
	if (v == "quarantine") return DmarcPolicy::quarantine;
	if (v == "reject") return DmarcPolicy::reject;
	return std::nullopt;
}

std::optional<DmarcAlign> parse_align(std::string_view value) {
	std::string v = ascii_lower(value);
	if (v == "r") return DmarcAlign::relaxed;
	if (v == "s") return DmarcAlign::strict;
	return std::nullopt;
}

// 1*DIGIT as a non-negative int; nullopt on anything else or overflow.
std::optional<int> parse_number(std::string_view value) {
	if (value.empty()) return std::nullopt;
	for (char c : value)
		if (!is_ascii_digit(c)) return std::nullopt;
	int n = 0;
	auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
	if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
	return n;
}

// RFC 7489 6.4 dmarc-uri: URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ].
// Only the URI scheme is checked (RFC 3986 3.1), enough to tell a URI from
// garbage; ',' and '!' inside the URI must be %-encoded (RFC 7489 6.2).
std::optional<DmarcUri> parse_uri(std::string_view text) {
	DmarcUri uri;
	size_t bang = text.find('!');
	std::string_view address = text.substr(0, bang);
	size_t colon = address.find(':');
	if (colon == std::string_view::npos || colon == 0 || !is_ascii_alpha(address[0]) || colon + 1 == address.size())
		return std::nullopt;
	for (char c : address.substr(0, colon))
		if (!is_ascii_alnum(c) && c != '+' && c != '-' && c != '.') return std::nullopt;
	for (char c : address)
		if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return std::nullopt;
	uri.address = std::string(address);
	if (bang != std::string_view::npos) {
		std::string_view size = text.substr(bang + 1);
		if (!size.empty()) {
			char unit = static_cast<char>(ascii_lower(size.substr(size.size() - 1))[0]);
			if (unit == 'k' || unit == 'm' || unit == 'g' || unit == 't') {
				uri.unit = std::string(1, unit);
				size.remove_suffix(1);
			}
		}
		if (size.empty()) return std::nullopt;
		uint64_t n = 0;
		for (char c : size)
			if (!is_ascii_digit(c)) return std::nullopt;
		auto [end, ec] = std::from_chars(size.data(), size.data() + size.size(), n);
		if (ec != std::errc() || end != size.data() + size.size()) return std::nullopt;
		uri.max_size = n;
	}
	return uri;
}

// A list of reporting URIs; invalid entries are dropped (RFC 7489 6.3).
std::vector<DmarcUri> parse_uri_list(std::string_view value) {
	std::vector<DmarcUri> out;
	for (std::string_view item : split(value, ','))
		if (auto uri = parse_uri(trim(item))) out.push_back(std::move(*uri));
	return out;
}

// A ':'-separated list whose every element passes `valid`; nullopt when one
// does not (the tag is then ignored and its default kept).
template <typename Valid>
std::optional<std::vector<std::string>> parse_colon_list(std::string_view value, Valid valid) {
	std::vector<std::string> out;
	for (std::string_view item : split(value, ':')) {
		std::string v = ascii_lower(trim(item));
		if (!valid(v)) return std::nullopt;
		out.push_back(std::move(v));
	}
	return out;
}

// RFC 5321 4.1.2 Keyword (rf= values, RFC 7489 6.4).
bool is_keyword(std::string_view s) {
	if (s.empty() || !is_ascii_alnum(s.front()) || !is_ascii_alnum(s.back())) return false;
	for (char c : s)
		if (!is_ascii_alnum(c) && c != '-') return false;
	return true;
}

// Matches "v" *WSP "=" *WSP "DMARC1" *WSP at the start of `txt`, followed by
// ";" or the end; returns the offset after the ";" (or the end).
std::optional<size_t> match_version(std::string_view txt) {
	size_t i = 0;
	auto skip_wsp = [&] {
		while (i < txt.size() && is_wsp(txt[i])) ++i;
	};
	if (txt.empty() || (txt[0] != 'v' && txt[0] != 'V')) return std::nullopt;
	i = 1;
	skip_wsp();
	if (i >= txt.size() || txt[i] != '=') return std::nullopt;
	++i;
	skip_wsp();
	// RFC 7489 6.3: the value is "DMARC1", case sensitive.
	if (txt.substr(i, 6) != "DMARC1") return std::nullopt;
	i += 6;
	skip_wsp();
	if (i == txt.size()) return i;
	if (txt[i] != ';') return std::nullopt;
	return i + 1;
}

DmarcParse invalid(std::string error) {
	DmarcParse p;
	p.is_dmarc = true;
	p.error = "dmarc: malformed dmarc dns record: " + std::move(error);
	return p;
}

// Reads the DMARC record(s) of one TXT answer (RFC 7489 6.6.3 steps 1-2, 5).
struct NameRecords {
	int dmarc_count = 0;
	DmarcParse first;
	std::string first_txt;
};

NameRecords read_records(const DnsAnswer& answer) {
	NameRecords out;
	for (const std::string& txt : answer.records) {
		DmarcParse p = parse_dmarc_record(txt);
		if (!p.is_dmarc) continue;
		if (out.dmarc_count++ == 0) {
			out.first = std::move(p);
			out.first_txt = txt;
		}
	}
	return out;
}

// Continues discovery after the answer for `name_domain`; `org_step` tells
// whether this was already the organizational domain's lookup.
void lookup_step(Resolver& resolver, uint64_t owner, std::string from, std::string name_domain, bool org_step,
                 std::function<void(DmarcLookup)> done) {
	std::string name = "_dmarc." + name_domain;
	resolver.query(owner, name, RrType::TXT,
	               [&resolver, owner, from = std::move(from), name_domain, org_step,
	                done = std::move(done)](const DnsAnswer& answer) mutable {
			       DmarcLookup result;
			       result.domain = name_domain;
			       if (!answer.found() && !answer.not_found()) {
				       // Any error other than "not found" may go away later
				       // (RFC 7489 6.6.3: a DNS failure, not an absent record).
				       result.status = DmarcStatus::temperror;
				       result.error = "dmarc: dns lookup: failed for _dmarc." + name_domain;
				       done(std::move(result));
				       return;
			       }
			       NameRecords records = read_records(answer);
			       if (records.dmarc_count > 1) {
				       // RFC 7489 6.6.3 step 5: policy discovery terminates.
				       result.error = "dmarc: multiple dmarc dns records";
				       done(std::move(result));
				       return;
			       }
			       if (records.dmarc_count == 1) {
				       result.txt = std::move(records.first_txt);
				       if (records.first.record) {
					       result.record = std::move(records.first.record);
				       } else {
					       result.status = DmarcStatus::permerror;
					       result.error = std::move(records.first.error);
				       }
				       done(std::move(result));
				       return;
			       }
			       // RFC 7489 6.6.3 step 3: no record at the From domain, try its
			       // organizational domain once.
			       std::string org = org_step ? name_domain : organizational_domain(from);
			       if (org_step || org == from) {
				       result.error = "dmarc: no dmarc dns record";
				       result.no_record = true;
				       done(std::move(result));
				       return;
			       }
			       lookup_step(resolver, owner, std::move(from), std::move(org), true, std::move(done));
		       });
}

int default_random_percent() {
	FastRandom engine;
	return std::uniform_int_distribution<int>(0, 99)(engine);
}

bool same_organization(const std::string& a, const std::string& b) {
	return organizational_domain(a) == organizational_domain(b);
}

// Identifier alignment of one authenticated domain (RFC 7489 3.1.1, 3.1.2).
bool aligned(const std::string& from, const std::string& authenticated, DmarcAlign mode) {
	if (authenticated.empty()) return false;
	if (authenticated == from) return true;
	return mode == DmarcAlign::relaxed && same_organization(from, authenticated);
}

}  // namespace

const char* dmarc_policy_name(DmarcPolicy p) {
	switch (p) {
	case DmarcPolicy::unset: return "";
	case DmarcPolicy::none: return "none";
	case DmarcPolicy::quarantine: return "quarantine";
	case DmarcPolicy::reject: return "reject";
	}
	return "";
}

const char* dmarc_status_name(DmarcStatus s) {
	switch (s) {
	case DmarcStatus::none: return "none";
	case DmarcStatus::pass: return "pass";
	case DmarcStatus::fail: return "fail";
	case DmarcStatus::temperror: return "temperror";
	case DmarcStatus::permerror: return "permerror";
	}
	return "none";
}

const char* alignment_name(Alignment a) {
	switch (a) {
	case Alignment::none: return "none";
	case Alignment::relaxed: return "relaxed";
	case Alignment::strict: return "strict";
	}
	return "none";
}

DmarcPolicy DmarcRecord::applicable_policy(const std::string& from_domain, const std::string& record_domain) const {
	if (record_domain != from_domain && subdomain_policy != DmarcPolicy::unset) return subdomain_policy;
	return policy;
}

namespace {

// A record being read: what is known so far.
struct DmarcReading {
	DmarcRecord record;
	size_t tags_seen = 0;
	bool policy_valid = false;
	bool subdomain_policy_valid = true;
};

// One tag=value; the error text when the record cannot stand, else "".
std::string apply_dmarc_tag(const std::string& tag, std::string_view value, DmarcReading& reading) {
	DmarcRecord& r = reading.record;
	if (tag == "p") {
		// RFC 7489 6.4: p= directly follows v=.
		if (reading.tags_seen != 1) return "p= (policy) must be first tag";
		if (auto p = parse_policy(value)) {
			r.policy = *p;
			reading.policy_valid = true;
		}
	} else if (tag == "sp") {
		if (auto p = parse_policy(value))
			r.subdomain_policy = *p;
		else
			reading.subdomain_policy_valid = false;
	} else if (tag == "rua") {
		r.aggregate_report_addresses = parse_uri_list(value);
	} else if (tag == "ruf") {
		r.failure_report_addresses = parse_uri_list(value);
	} else if (tag == "adkim" || tag == "aspf") {
		auto a = parse_align(value);
		if (!a) return "bad " + tag + " value \"" + std::string(value) + "\", expected r or s";
		(tag == "adkim" ? r.adkim : r.aspf) = *a;
	} else if (tag == "pct") {
		auto pct = parse_number(value);
		if (!pct || *pct > 100) return "bad percentage \"" + std::string(value) + "\"";
		r.percentage = *pct;
	} else if (tag == "ri") {
		if (auto ri = parse_number(value)) r.report_interval = *ri;
	} else if (tag == "fo") {
		auto fo = parse_colon_list(
		    value, [](const std::string& v) { return v == "0" || v == "1" || v == "d" || v == "s"; });
		if (fo) r.failure_options = std::move(*fo);
	} else if (tag == "rf") {
		if (auto rf = parse_colon_list(value, is_keyword)) r.report_formats = std::move(*rf);
	}
	// Unknown tags are ignored (RFC 7489 6.3).
	return "";
}

}  // namespace

DmarcParse parse_dmarc_record(std::string_view txt) {
	std::optional<size_t> after_version = match_version(txt);
	if (!after_version) return DmarcParse{};

	DmarcReading reading;
	std::set<std::string> seen;
	// Tags are separated by ";" (RFC 7489 6.4 dmarc-sep); URIs with a
	// literal ";" are not supported, as in the model. Empty parts (a
	// trailing ";") are harmless.
	for (std::string_view part : split(txt.substr(*after_version), ';')) {
		part = trim(part);
		if (part.empty()) continue;
		size_t n = 0;
		while (n < part.size() && is_ascii_alnum(part[n])) ++n;
		std::string tag = ascii_lower(part.substr(0, n));
		std::string_view rest = trim(part.substr(n));
		if (tag.empty() || rest.empty() || rest[0] != '=')
			return invalid("expected tag=value in \"" + std::string(part) + "\"");
		// RFC 7489 is silent on repeated tags; they can only confuse.
		if (!seen.insert(tag).second) return invalid("duplicate tag \"" + tag + "\"");
		reading.tags_seen = seen.size();
		std::string error = apply_dmarc_tag(tag, trim(rest.substr(1)), reading);
		if (!error.empty()) return invalid(error);
	}

	// RFC 7489 6.6.3 step 6: a missing/invalid p= or an invalid sp= with a
	// usable rua= acts as p=none; otherwise no valid policy.
	DmarcRecord& r = reading.record;
	if (!reading.policy_valid || !reading.subdomain_policy_valid) {
		if (r.aggregate_report_addresses.empty())
			return invalid("invalid (subdomain)policy and no valid aggregate reporting address");
		r.policy = DmarcPolicy::none;
		r.subdomain_policy = DmarcPolicy::unset;
	}
	DmarcParse p;
	p.is_dmarc = true;
	p.record = std::move(r);
	return p;
}

Alignment from_alignment(const std::string& from_domain, const std::vector<dkim::Result>& dkim_results,
                         SpfStatus spf_result, const std::string& spf_domain) {
	std::string from = ascii_lower(from_domain);
	bool relaxed = false;
	for (const dkim::Result& r : dkim_results) {
		if (r.status != dkim::Status::pass || !r.signature) continue;
		if (r.signature->domain == from) return Alignment::strict;
		relaxed = relaxed || same_organization(from, r.signature->domain);
	}
	if (spf_result == SpfStatus::pass && !spf_domain.empty()) {
		std::string spf = ascii_lower(spf_domain);
		if (spf == from) return Alignment::strict;
		relaxed = relaxed || same_organization(from, spf);
	}
	return relaxed ? Alignment::relaxed : Alignment::none;
}

void dmarc_lookup(Resolver& resolver, uint64_t owner, const std::string& domain,
                  std::function<void(DmarcLookup)> done) {
	std::string from = ascii_lower(domain);
	lookup_step(resolver, owner, from, from, false, std::move(done));
}

DmarcResult dmarc_evaluate(DmarcLookup lookup, const std::string& from_domain,
                           const std::vector<dkim::Result>& dkim_results, SpfStatus spf_result,
                           const std::string& spf_domain, const DmarcOptions& options) {
	std::string from = ascii_lower(from_domain);
	std::string spf = ascii_lower(spf_domain);
	DmarcResult result;
	result.domain = from;
	result.record_domain = lookup.domain;
	result.comment = lookup.error;
	if (!lookup.record) {
		result.status = lookup.status;
		return result;
	}
	const DmarcRecord& record = *lookup.record;

	// RFC 7489 6.6.4: pct= samples the messages the policy applies to.
	int draw = 0;
	if (options.apply_percentage && record.percentage != 100)
		draw = options.random_percent ? options.random_percent() : default_random_percent();
	result.use = !options.apply_percentage || record.percentage == 100 || draw < record.percentage;

	// Quarantine counts as reject, as in the model; a message sampled out
	// is therefore not "downgraded" to quarantine.
	result.reject = record.applicable_policy(from, lookup.domain) != DmarcPolicy::none;

	// RFC 7489 4.2: pass when SPF or DKIM passed for an aligned domain.
	result.aligned_spf_pass = spf_result == SpfStatus::pass && aligned(from, spf, record.aspf);
	bool dkim_temperror = false;
	for (const dkim::Result& r : dkim_results) {
		if (r.status == dkim::Status::temperror)
			dkim_temperror = true;
		else if (r.status == dkim::Status::pass && r.signature &&
		         aligned(from, r.signature->domain, record.adkim))
			result.aligned_dkim_pass = true;
	}

	if (result.aligned_spf_pass || result.aligned_dkim_pass) {
		result.status = DmarcStatus::pass;
		result.reject = false;
	} else if (spf_result == SpfStatus::temperror || dkim_temperror) {
		// RFC 7489 6.6.2: a transient failure may still turn into a pass; do
		// not reject on it.
		result.status = DmarcStatus::temperror;
		result.reject = false;
	} else {
		result.status = DmarcStatus::fail;
	}
	result.record = std::move(lookup.record);
	return result;
}

void dmarc_verify(Resolver& resolver, uint64_t owner, const std::string& from_domain,
                  const std::vector<dkim::Result>& dkim_results, SpfStatus spf_result, const std::string& spf_domain,
                  std::function<void(DmarcResult)> done, DmarcOptions options) {
	dmarc_lookup(
	    resolver, owner, ascii_lower(from_domain),
	    [from_domain, dkim_results, spf_result, spf_domain, options = std::move(options),
	     done = std::move(done)](DmarcLookup lookup) {
		    done(dmarc_evaluate(std::move(lookup), from_domain, dkim_results, spf_result, spf_domain, options));
	    });
}

}  // namespace tern::mailauth
