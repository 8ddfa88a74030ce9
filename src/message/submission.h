// Message helpers for the submission path (doc/behaviour.md §8): the single
// From address a submitted message must carry, header presence and value
// lookups (Return-Path refusal, Message-Id/Date defaults), and the
// Message-Id and Date fields tern adds when they are missing. Pure;
// unit-tested in tests/unit/test_submission_msg.cpp.
#pragma once
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "message/header_parse.h"
#include "smtp/parser.h"

namespace tern::message {

struct FromResult {
	bool ok = false;
	smtp::Address address;  // set when ok
	// Set when !ok; the caller replies
	// `550 5.6.0 cannot parse header or From address: <error>`.
	std::string error;
};

// The address of the message's From field. RFC 5322 3.6.2 allows a
// mailbox-list, but the model (and DMARC, RFC 7489 6.6.1) needs exactly one
// From field holding exactly one mailbox. Accepted: display names (atoms,
// quoted strings, obsolete dotted phrases), comments, quoted and obsolete
// dotted localparts, angle addresses (an obsolete route before the
// addr-spec is skipped), UTF-8 in atoms and quoted strings (RFC 6532 3.2).
// Refused: group syntax, address literals as domain, empty lists.
// Errors (the model's wording where it has one):
//   "missing or duplicate from header: N headers"
//   "from header does not have exactly one address: N addresses"
//   "malformed from header: <what>"
//   "bad domain in from address: <domain>"
//   "parsing localpart in from address: <localpart>"
FromResult parse_single_from(const HeaderSection&);

// Same, on a whole message (or header section); a header section that
// cannot be split gives "parsing message header: <reason>".
FromResult parse_single_from(std::string_view message);

// The address of the first From field, however many follow it: what
// DMARC judges on port 25, as the model does (it reads the first field;
// doc/behaviour.md §9). Refusing nothing there, a message with a second
// From field of a domain without a policy must not escape the first one's
// policy. Errors as above, "missing from header" for none.
FromResult parse_first_from(const HeaderSection&);

// The addresses of an address-list field value (RFC 5322 3.4), unfolded:
// To, Cc and Bcc for sendmail -t. Groups ("name: a@b, c@d;", also the
// empty "undisclosed-recipients:;") give their members. A bare word
// without "@" (cron writes "To: root") is returned as is for the caller
// to qualify with its own domain. nullopt with `error` set on bad syntax.
std::optional<std::vector<std::string>> parse_address_list(std::string_view value, std::string* error = nullptr);

// Whether a field `name` is present (case-insensitive), whatever its value.
bool has_header(const HeaderSection&, std::string_view name);

// The first field `name`: unfolded (RFC 5322 2.2.3) and trimmed. nullopt
// when absent. Note the model treats a present but empty Message-Id or Date
// as missing (it tests the value), so callers check `value_or("").empty()`.
std::optional<std::string> header_value(const HeaderSection&, std::string_view name);

// A new message id without angle brackets: 16 random bytes as 22 base64url
// characters, "@", then `hostname` (the model's form, doc/behaviour.md §7).
// Pass the Unicode hostname for SMTPUTF8 transactions, the ASCII one
// otherwise, as the model does.
std::string make_message_id(const std::string& hostname);

// "Message-Id: <id>\r\n" for an id without angle brackets.
std::string message_id_header(std::string_view message_id);

// "Date: 2 Jan 2006 15:04:05 -0700\r\n": the model writes its added Date
// without the optional day-of-week (RFC 5322 3.3 allows that), in the
// zone offset given (e.g. local_utc_offset(t) from headers.h).
std::string date_header(std::time_t t, int tz_offset_s = 0);

}  // namespace tern::message
