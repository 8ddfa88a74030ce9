// The envelope parameters of the DSN extension (RFC 3461 4) with the
// UTF-8 address forms of RFC 6533 3 and 4: their grammar, xtext decoding
// and encoding, and the values the queue keeps with each recipient. Pure;
// unit-tested in tests/unit/test_dsn_params.cpp.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tern::smtp {

// RFC 3461 4.1 NOTIFY, as bits; 0 means the parameter was not given (the
// MTA then decides: failures and delays are reported, successes not).
enum DsnNotify : uint8_t {
	notify_success = 1,
	notify_failure = 2,
	notify_delay = 4,
	notify_never = 8,
};

// RFC 3461 4.3 RET.
enum class DsnRet : uint8_t { unset, full, hdrs };

// Whether a DSN is due for an event given the recipient's NOTIFY bits
// (RFC 3461 4.1; 0 = not given). Without NOTIFY the MTA reports failures
// and delays, never successes (RFC 3461 4.1 leaves it to the MTA; Postfix
// does the same).
enum class DsnEvent { failure, delay, success };
bool dsn_wanted(int notify, DsnEvent event);

// RFC 3461 4: xtext decoding. Printable ASCII except "+" and "=" stands
// for itself, "+HH" (two upper-case hex digits) for any octet. nullopt for
// anything else (a lone "+", lower-case hex, spaces, controls, non-ASCII).
std::optional<std::string> xtext_decode(std::string_view xtext);
// RFC 3461 4: octets outside "!" .. "~", and "+" and "=", become "+HH".
std::string xtext_encode(std::string_view text);

// RFC 3461 4.1: "NEVER" or a comma-separated list of SUCCESS, FAILURE and
// DELAY (case-insensitive, each at most once). nullopt when malformed.
std::optional<uint8_t> parse_notify(std::string_view value);
// "SUCCESS,FAILURE,DELAY" order / "NEVER"; "" for 0.
std::string notify_to_string(uint8_t notify);

// RFC 3461 4.3: FULL or HDRS, case-insensitive.
std::optional<DsnRet> parse_ret(std::string_view value);
// "FULL" / "HDRS" / "".
std::string ret_to_string(DsnRet ret);

// RFC 3461 4.4: the ENVID value, at most 100 characters, decoded; the
// decoded identifier must be printable ASCII (spaces allowed). nullopt
// when malformed.
std::optional<std::string> parse_envid(std::string_view value);

// An ORCPT value (RFC 3461 4.2, RFC 6533 4), decoded: the address type
// in lower case ("rfc822", "utf-8", or any other atom) and the address.
struct OriginalRecipient {
	std::string type;
	std::string address;  // decoded; UTF-8 for type "utf-8"
	bool operator==(const OriginalRecipient&) const = default;
};

// RFC 3461 4.2: addr-type ";" xtext, at most 500 characters. For
// "utf-8" (RFC 6533 3): utf-8-addr-xtext (QCHAR and "\x{HEX}"), and with
// `smtputf8` utf-8-addr-unitext (UTF-8 allowed as is). nullopt when
// malformed.
std::optional<OriginalRecipient> parse_orcpt(std::string_view value, bool smtputf8);

// The stored form "type;address" (decoded) and back; the queue keeps this.
std::string orcpt_to_stored(const OriginalRecipient&);
std::optional<OriginalRecipient> orcpt_from_stored(std::string_view stored);

// The ORCPT parameter value for a next hop: rfc822 and other types as
// xtext, utf-8 as utf-8-addr-xtext (ASCII, valid with or without
// SMTPUTF8; RFC 6533 3).
std::string orcpt_to_param(const OriginalRecipient&);

// RFC 6533 3 utf-8-addr-xtext: non-ASCII characters, "+", "=", "\" and
// controls as "\x{HEX}" (upper-case hex of the code point).
std::string utf8_addr_xtext(std::string_view utf8);

}  // namespace tern::smtp
