// DMARC (RFC 7489): record parsing, policy discovery, identifier alignment
// and the verdict as the model computes it (doc/behaviour.md §9 steps 7-8),
// written against the abstract Resolver.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailauth/dkim.h"
#include "mailauth/resolver.h"
#include "mailauth/spf.h"

namespace tern::mailauth {

// ---------------------------------------------------------------- record

// p= and sp= values (RFC 7489 6.3); `unset` only for an absent sp=.
enum class DmarcPolicy { unset, none, quarantine, reject };
const char* dmarc_policy_name(DmarcPolicy);  // "", "none", "quarantine", "reject"

// adkim= / aspf= (RFC 7489 3.1).
enum class DmarcAlign { relaxed, strict };

// A reporting URI from rua= or ruf= (RFC 7489 6.2): "mailto:a@b!10m".
struct DmarcUri {
	std::string address;    // the URI without the size suffix
	uint64_t max_size = 0;  // 0: no limit given
	std::string unit;       // "", "k", "m", "g", "t" (lower case)
};

// A parsed DMARC record with RFC 7489 6.3 defaults for absent tags.
// Keyword values are lower case.
struct DmarcRecord {
	DmarcPolicy policy = DmarcPolicy::none;              // p=
	DmarcPolicy subdomain_policy = DmarcPolicy::unset;   // sp=
	std::vector<DmarcUri> aggregate_report_addresses;    // rua=
	std::vector<DmarcUri> failure_report_addresses;      // ruf=
	DmarcAlign adkim = DmarcAlign::relaxed;              // adkim=
	DmarcAlign aspf = DmarcAlign::relaxed;               // aspf=
	int report_interval = 86400;                         // ri=, seconds
	std::vector<std::string> failure_options = {"0"};    // fo=
	std::vector<std::string> report_formats = {"afrf"};  // rf=
	int percentage = 100;                                // pct=, 0..100

	// The policy for mail from `from_domain` when this record was found at
	// `record_domain`: sp= for a subdomain (the organizational domain's
	// record) when present, else p= (RFC 7489 6.3 "sp").
	DmarcPolicy applicable_policy(const std::string& from_domain, const std::string& record_domain) const;
};

struct DmarcParse {
	std::optional<DmarcRecord> record;  // set when the text is a valid record
	// The text starts with "v=DMARC1" (RFC 7489 6.6.3 step 2: other TXT
	// records at the name are not DMARC records and are ignored).
	bool is_dmarc = false;
	std::string error;  // why a DMARC record is invalid
};

// Parses a TXT record. v=DMARC1 must come first and p= right after it
// (RFC 7489 6.4 ABNF); tags are case-insensitive; unknown tags are skipped;
// a duplicated tag, an invalid p/sp/adkim/aspf or a pct outside 0..100 make
// the record invalid, except that a missing or invalid p/sp with a usable
// rua= reads as p=none (RFC 7489 6.6.3 step 6). Bad rua/ruf URIs, fo, rf and
// ri values are dropped (RFC 7489 6.3: syntax errors there SHOULD be
// ignored) and the defaults kept.
DmarcParse parse_dmarc_record(std::string_view txt);

// ---------------------------------------------------------------- alignment

// How the From domain is authenticated (RFC 7489
// 3.1): strict when a passing DKIM signature has d= equal to it, or SPF
// passed for exactly that domain; relaxed when a passing DKIM d= or the
// SPF-passed domain has the same organizational domain; else none.
enum class Alignment { none, relaxed, strict };
const char* alignment_name(Alignment);  // "none", "relaxed", "strict"

// `spf_domain` is the domain SPF evaluated (MAIL FROM domain, or the HELO
// name for a null reverse path), "" when none. Domains are ASCII.
Alignment from_alignment(const std::string& from_domain, const std::vector<dkim::Result>& dkim_results,
                         SpfStatus spf_result, const std::string& spf_domain);

// ---------------------------------------------------------------- lookup

// RFC 7489 11.2 / RFC 8601 result words for "dmarc".
enum class DmarcStatus { none, pass, fail, temperror, permerror };
const char* dmarc_status_name(DmarcStatus);

// Policy discovery (RFC 7489 6.6.3).
struct DmarcLookup {
	// none: no (single) record; temperror: DNS failure; permerror: the
	// applicable record is invalid. A found record also has status none.
	DmarcStatus status = DmarcStatus::none;
	std::string domain;                 // where the record is: the From domain or its organizational domain
	std::optional<DmarcRecord> record;  // set when a valid record applies
	std::string txt;                    // that record's TXT text
	std::string error;                  // e.g. "dmarc: multiple dmarc dns records"
	bool no_record = false;             // neither name has a DMARC record at all
};

// Looks up TXT "_dmarc.<domain>", then "_dmarc.<organizational domain>"
// when the first name has no DMARC record and the organizational domain
// differs. More than one DMARC record at a name ends discovery without a
// policy (RFC 7489 6.6.3 step 5). `done` runs exactly once, possibly before
// this function returns.
void dmarc_lookup(Resolver&, uint64_t owner, const std::string& domain, std::function<void(DmarcLookup)> done);

// ---------------------------------------------------------------- verdict

struct DmarcResult {
	DmarcStatus status = DmarcStatus::none;
	// The policy asks to reject the message: p= (or sp=) is quarantine or
	// reject and nothing aligned passed. The model treats quarantine as
	// reject (RFC 7489 6.6.4 leaves the handling to the receiver).
	bool reject = false;
	// pct= sampling selected this message: the policy applies (RFC 7489
	// 6.6.4). False when there is no record.
	bool use = false;
	std::string domain;  // the From domain
	std::optional<DmarcRecord> record;
	std::string record_domain;  // where the record was found
	bool aligned_spf_pass = false;
	bool aligned_dkim_pass = false;
	std::string comment;  // lookup error text, for logs
};

struct DmarcOptions {
	// Honour pct= (the model always does while delivering).
	bool apply_percentage = true;
	// Returns a uniformly random integer in [0, 100); the policy applies
	// when it is below pct=. Empty: a process-wide pseudo-random source.
	std::function<int()> random_percent;
};

// DMARC verification as the model does it: discovers the record for `from_domain`, then
//  - no record (or an invalid one): status none/temperror/permerror, not used;
//  - otherwise reject per policy, status fail, unless
//  - SPF temperror: temperror, no reject;
//  - SPF passed for an aligned domain (equal, or same organizational domain
//    with aspf=r): pass, no reject;
//  - any DKIM temperror: temperror, no reject; a passing DKIM signature
//    with aligned d= (adkim likewise): pass, no reject.
// `spf_domain` as for from_alignment. `done` runs exactly once, possibly
// before this function returns.
void dmarc_verify(Resolver&, uint64_t owner, const std::string& from_domain,
                  const std::vector<dkim::Result>& dkim_results, SpfStatus spf_result, const std::string& spf_domain,
                  std::function<void(DmarcResult)> done, DmarcOptions options = {});

// The verdict of dmarc_verify once the record's lookup is done (dmarc_lookup
// for the lower-cased From domain); pure. The inbound path starts that
// lookup as soon as the message's From is known and evaluates here.
DmarcResult dmarc_evaluate(DmarcLookup lookup, const std::string& from_domain,
                           const std::vector<dkim::Result>& dkim_results, SpfStatus spf_result,
                           const std::string& spf_domain, const DmarcOptions& options = {});

}  // namespace tern::mailauth
