// Sender Policy Framework (RFC 7208) as a pure asynchronous evaluator over the
// abstract Resolver: no sockets, no blocking. Every DNS answer continues the
// evaluation from the resolver's callback; answers that arrive synchronously
// (CannedResolver) are queued and run by a trampoline, so the stack depth
// does not grow with the number of lookups.
//
// Behaviour follows the model's SPF check (doc/behaviour.md §4 step 5, §9
// steps 4 and 6) where it is RFC-conformant; where the model deviates from
// RFC 7208 this evaluator follows the RFC (see spf.cpp for the list).
#pragma once
#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "mailauth/resolver.h"
#include "util/ipaddr.h"

namespace tern::mailauth {

// RFC 7208 2.6 results.
enum class SpfStatus { none, neutral, pass, fail, softfail, temperror, permerror };

// "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror".
const char* spf_status_name(SpfStatus);

// Inputs of Verify, as the SMTP session knows them.
struct SpfArgs {
	IpAddr remote_ip;
	std::string mailfrom_localpart;
	std::string mailfrom_domain;    // ASCII; "" for the null reverse path
	std::string helo_domain;        // ASCII, or "" when EHLO gave an address literal
	std::optional<IpAddr> helo_ip;  // when EHLO was an address literal
	std::string local_ip_text;      // informational; %{c} is the client IP (RFC 7208 7.2)
	std::string local_hostname;     // receiver= and the %{r} macro
	std::time_t now = 0;            // %{t}; 0 means the current time (tests pin it)
};

// The Received-SPF header field (RFC 7208 9.1) with the model's wording.
struct SpfReceived {
	// `none` (rendered `identity=""`) only for the address-literal HELO with a
	// null reverse path, where the model checks nothing.
	enum class Identity { mailfrom, helo, none };

	SpfStatus result = SpfStatus::none;
	std::string comment;  // "domain example.com", written inside "()"
	IpAddr client_ip;
	std::string envelope_from;  // "localpart@domain" that was checked
	std::string helo;           // EHLO domain or address text
	std::string problem;        // error text for temperror/permerror/none
	std::string receiver;       // our host name
	Identity identity = Identity::mailfrom;
	std::string mechanism;  // directive that matched, "default", or ""

	// "Received-SPF: pass (comment) client-ip=...; envelope-from=...; helo=...;
	// [problem=...;] [mechanism=...;] receiver=...; identity=mailfrom\r\n",
	// folded at 78 columns like the other added header fields.
	std::string header() const;
};

const char* spf_identity_name(SpfReceived::Identity);

// RFC 7208 4.6 check_host() arguments plus what macro expansion in "exp"
// text needs.
struct SpfHostQuery {
	IpAddr ip;
	std::string domain;            // <domain> to evaluate
	std::string sender_localpart;  // "" becomes "postmaster" (RFC 7208 4.3)
	std::string sender_domain;
	std::string helo;      // %{h}
	std::string receiver;  // %{r}; "unknown" when empty
	std::time_t now = 0;   // %{t}; 0 means the current time
};

using SpfHostDone =
    std::function<void(SpfStatus status, std::string mechanism, std::string explanation, std::string problem)>;

// RFC 7208 4 check_host(): result, the mechanism that decided it ("default"
// when nothing matched, "" when no record was evaluated), the expanded "exp"
// explanation (fail only, may be ""), and a problem text for errors.
// `done` runs exactly once, possibly before this function returns.
void spf_check_host(Resolver& resolver, uint64_t owner, SpfHostQuery query, SpfHostDone done);
void spf_check_host(Resolver& resolver, uint64_t owner, const IpAddr& ip, const std::string& domain,
                    const std::string& sender_localpart, const std::string& sender_domain, const std::string& helo,
                    SpfHostDone done);

using SpfVerifyDone = std::function<void(SpfReceived received, std::string explanation, bool authentic)>;

// The model's SPF check: checks the MAIL FROM domain; with a null reverse path the
// HELO name with localpart "postmaster" (identity helo); an address-literal
// HELO with a null reverse path gives "none" without any lookup.
// `authentic` mirrors the model's "all answers DNSSEC-validated" flag; the
// Resolver does not report DNSSEC, so it is always false for now. Whether the
// sender is validated is `received.result == pass` (with identity mailfrom
// for the MAIL FROM domain). `done` runs exactly once, possibly synchronously.
void spf_verify(Resolver& resolver, uint64_t owner, const SpfArgs& args, SpfVerifyDone done);

// Macro expansion (RFC 7208 7) without DNS: exposed for tests and for
// ternctl. `validated_ptr` is the value of %{p}. `for_exp` allows c, r and t.
// Returns std::nullopt on a macro syntax error.
struct SpfMacroContext {
	IpAddr ip;
	std::string sender_localpart;
	std::string sender_domain;
	std::string domain;
	std::string helo;
	std::string validated_ptr = "unknown";
	std::string receiver;
	std::time_t now = 0;
};
std::optional<std::string> spf_expand_macros(std::string_view text, const SpfMacroContext& ctx, bool for_exp);

}  // namespace tern::mailauth
