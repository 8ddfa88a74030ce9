// The SMTP command-argument parser: RFC 5321 4.1.2 grammar with the RFC 6531
// (SMTPUTF8) extensions, as the model's parser applies it (doc/behaviour.md §3).
// Pure: takes the argument text of one command line, returns a Result: the
// values, or the model's reply as its error (`501 5.5.2 bad syntax: …` etc.).
#pragma once
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/dsn_params.h"
#include "smtp/reply.h"
#include "smtp/result.h"
#include "util/ipaddr.h"

namespace tern::smtp {

// A domain in both forms: `ascii` is the A-label form (lower case, IDNA via
// libidn2), `unicode` the U-label form (equal to ascii when there is no IDN).
struct Domain {
	std::string ascii;
	std::string unicode;
	bool empty() const { return ascii.empty(); }
	bool operator==(const Domain&) const = default;
};

// A mailbox: localpart (unquoted, escapes removed, may be UTF-8) and either a
// domain or an address literal.
struct Address {
	std::string localpart;
	Domain domain;             // empty when `ip` is set
	std::optional<IpAddr> ip;  // address literal `[1.2.3.4]` / `[IPv6:…]`
	// `local@domain` with the localpart quoted when needed (RFC 5321 4.1.2)
	// and the domain in `unicode` form (or the literal).
	std::string to_string() const;
	// Same with the ASCII domain form.
	std::string to_ascii_string() const;
	// What DNS is asked about for this address: the domain's ASCII form,
	// or the literal.
	std::string lookup_domain() const;
};

// How the parser behaves for this command on this connection.
struct ParseMode {
	bool submission = false;     // submission listener: strict end of command, optional space after "FROM:"/"TO:"
	bool pedantic = false;       // 64-octet localparts, no optional space
	bool smtputf8 = false;       // UTF-8 allowed in localparts and domains
	bool authenticated = false;  // append ` (remaining "…")` to syntax errors
	// ASCII labels over 63 octets taken, as in message header addresses
	// (see parse_header_address); commands never take them (doc/behaviour.md
	// D26). libidn2 still refuses a U-label whose A-label is that long.
	bool long_labels = false;
};

// HELO / EHLO argument: a domain (both) or an address literal (EHLO only).
// Text after the name is ignored (RFC 5321 4.1.1.1 allows it in practice).
struct HelloArg {
	Domain domain;
	std::optional<IpAddr> ip;
	std::string raw;  // the name as sent, for Received headers
};
Result<HelloArg> parse_hello(std::string_view args, bool ehlo, const ParseMode&);

// MAIL FROM argument (` FROM:<path> params`).
struct MailArgs {
	std::optional<Address> from;  // nullopt = null reverse path `<>`
	std::optional<int64_t> size;
	bool body_8bitmime = false;        // BODY=8BITMIME
	bool smtputf8 = false;             // SMTPUTF8 parameter
	std::optional<std::string> auth;   // AUTH= value, xtext-decoded (doc/behaviour.md D3)
	DsnRet ret = DsnRet::unset;        // RFC 3461 4.3 RET=
	std::optional<std::string> envid;  // RFC 3461 4.4 ENVID=, xtext-decoded
	bool requiretls = false;           // RFC 8689 2 REQUIRETLS (the caller checks for TLS)
};
// Refuses: 501 5.5.2 syntax, 501 5.5.4 duplicate param or malformed DSN
// parameter (RFC 3461 4), 555 5.3.3 / 5.5.4 unrecognized parameter,
// 550 5.6.7 non-ascii without smtputf8, 552 message too large for a SIZE
// over `max_message_size` (RFC 1870 6.1), as soon as SIZE is read: before
// the parameters after it and the address, as the model does.
Result<MailArgs> parse_mail(std::string_view args, const ParseMode&,
                            int64_t max_message_size = std::numeric_limits<int64_t>::max());

// RCPT TO argument (` TO:<path>` or ` TO:<POSTMASTER>`) with the DSN
// parameters NOTIFY and ORCPT (RFC 3461 4.1, 4.2; RFC 6533 4 with
// SMTPUTF8): a duplicate or malformed one is 501 5.5.4, any other
// parameter 555 5.3.3 unrecognized parameter.
struct RcptArgs {
	bool postmaster = false;  // the bare `<POSTMASTER>` form
	Address to;               // set unless `postmaster`
	uint8_t notify = 0;       // DsnNotify bits; 0 = not given
	std::optional<OriginalRecipient> orcpt;
};
Result<RcptArgs> parse_rcpt(std::string_view args, const ParseMode&);

// A command line cut after its verb: "MAIL FROM:<>" gives "MAIL" and
// " FROM:<>" (the arguments keep their leading space, which the parsers
// below expect); a line without a space is all verb.
struct CommandLine {
	std::string_view verb;
	std::string_view args;
};
CommandLine split_command(std::string_view line);
// The verb in the form commands are looked up in: lower case as the
// model's Unicode lower-casing makes it, which turns ASCII letters and the
// only two other characters whose lower case is ASCII (U+0130 "İ" to "i",
// U+212A KELVIN SIGN to "k") into ASCII; any other byte stays, and no
// command name has it.
std::string command_verb(std::string_view verb);

// Commands without arguments (DATA, RSET, QUIT, STARTTLS): trailing spaces
// and tabs tolerated on the delivery listener; anything else is
// `501 5.5.2 bad syntax: trailing data, not white space: " x"`.
Status parse_no_args(std::string_view args, const ParseMode&);

// VRFY / EXPN: required ` <string>` (atom or quoted string), optional
// ` SMTPUTF8`. NOOP: optional string.
Result<std::string> parse_vrfy(std::string_view args, const ParseMode&);
Status parse_noop(std::string_view args, const ParseMode&);

// AUTH: ` MECH` [` initial-response`]. The mechanism is returned upper-cased
// (doc/behaviour.md D4: case-insensitive). `initial` is nullopt when absent, ""
// for `=`. A space with nothing after it is refused with
// `501 5.5.2 missing initial auth base64 parameter after space`.
struct AuthArgs {
	std::string mechanism;
	// What followed the space after the mechanism, still base64: "" when
	// nothing did, nullopt without the space.
	std::optional<std::string> initial;
	// What followed the mechanism's name without a space (a character no
	// mechanism name has, or its 21st): refused by initial_response, once
	// the mechanism is known to run.
	std::string unexpected;
};
Result<AuthArgs> parse_auth(std::string_view args, const ParseMode&);
// The initial response of a mechanism that runs: a syntax error for text
// after the name of one that takes none (`expected end of line`) or for
// text not separated by a space (`expected " "`), else
// decode_initial_response's answer.
Result<std::optional<std::string>> initial_response(const AuthArgs& auth, bool takes_initial, const ParseMode&);
// RFC 4954 4: the initial response decoded: nullopt when none was sent,
// "" for "="; refused with `501 5.5.2 missing initial auth base64
// parameter after space` when the space had nothing after it, or as
// decode_auth_base64 refuses.
Result<std::optional<std::string>> decode_initial_response(const std::optional<std::string>& initial);
// A client's base64 in AUTH: `501 5.5.2 invalid base64: illegal base64
// data at input byte N` when it is not (the model's text).
Result<std::string> decode_auth_base64(std::string_view text);

// BDAT argument (RFC 3030 2): ` <chunk-size> [LAST]`, chunk-size 1*DIGIT
// (at most 2^64-1), LAST in any case; trailing spaces and tabs are
// tolerated. Anything else is refused with `501 5.5.4 invalid BDAT ...`: the caller
// cannot know how many octets follow such a line.
struct BdatArgs {
	uint64_t size = 0;
	bool last = false;
};
// Trailing blanks are tolerated except on submission listeners, as for
// every command.
Result<BdatArgs> parse_bdat(std::string_view args, const ParseMode& mode);

// Domain validation shared with config and message code: parses a domain
// name (UTF-8 allowed), returns both forms or nullopt.
std::optional<Domain> parse_domain(std::string_view name);

// Mailbox `local@domain` (or `local@[literal]`) without brackets, UTF-8
// allowed, for config and message code; nullopt when invalid.
std::optional<Address> parse_address(std::string_view text);

// parse_address for an address in a message's header (From): an ASCII label over
// 63 octets is taken, as the model's IDNA profile takes it, so that a From
// domain no DNS zone can hold still meets the policy of its organizational
// domain (its own lookups find nothing) instead of escaping DMARC.
std::optional<Address> parse_header_address(std::string_view text);
std::optional<Domain> parse_header_domain(std::string_view name);

// The model's syntax error for callers that detect one themselves (e.g. an
// initial response given to CRAM-MD5): `501 5.5.2 bad syntax: <what>`, plus
// ` (remaining "<remaining>")` when mode.authenticated.
SmtpError syntax_error(std::string_view what, std::string_view remaining, const ParseMode&);

// Quotes like Go's %q verb (the model's reply texts use it): double quotes,
// backslash escapes for '"', '\\' and control characters, \xHH for invalid UTF-8.
std::string quote_go(std::string_view);

}  // namespace tern::smtp
