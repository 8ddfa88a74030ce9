// Delivery Status Notifications (RFC 3464, RFC 6533 for UTF-8): composing
// the multipart/report message, and the human-readable texts the model puts
// in it (doc/behaviour.md §12 for the queue, §13 for incoming deliveries,
// decisions 10 and 11). Pure (randomness only for the MIME boundary);
// unit-tested in tests/unit/test_dsn.cpp.
#pragma once
#include <ctime>
#include <string>
#include <vector>

namespace tern::message {

// RFC 3464 2.3: the per-recipient fields.
struct DsnRecipient {
	// Address "local@domain" (without brackets). Written as
	// "rfc822;local@ascii-domain"; with a UTF-8 localpart as "utf-8;" (RFC
	// 6533 3): utf-8-addr-xtext ("\x{HEX}") in the ASCII variant, as is in
	// the UTF-8 variant (which also uses "utf-8;" for ASCII addresses).
	std::string final_recipient;
	// "failed" | "delayed" | "delivered" | "relayed" (RFC 3464 2.3.3)
	std::string action;
	// "5.1.1"; when empty: 5.0.0 for failed, 4.0.0 for delayed, else 2.0.0.
	std::string status;
	std::string status_comment;  // optional, written as "Status: 5.1.1 (comment)"
	// Remote host that answered: "mx.example" or "mx.example ([1.2.3.4])";
	// "dns;" is prepended unless already there. Empty: no Remote-MTA field.
	std::string remote_mta;
	// The remote's reply, "smtp; 550 5.1.1 no such user" ("smtp; " is
	// prepended unless already there). Empty: no Diagnostic-Code field.
	std::string diagnostic;
	std::time_t last_attempt = 0;      // 0: no Last-Attempt-Date
	std::time_t will_retry_until = 0;  // 0: no Will-Retry-Until (set for "delayed")
	// RFC 3464 2.3.1 Original-Recipient from the ORCPT parameter, stored
	// form "type;address" (decoded); a "utf-8" address is written as
	// utf-8-addr-xtext in the ASCII variant (RFC 6533 3). Empty: no field.
	std::string original_recipient = {};
};

struct DsnMessage {
	// Whether the original message was received with SMTPUTF8: only then
	// may a UTF-8 variant be composed, and the original header section,
	// which may then hold UTF-8, is base64-encoded for ASCII receivers.
	bool smtputf8 = false;
	std::string from;           // "postmaster@host", written as From: <…>
	std::string to;             // the original MAIL FROM, written as To: <…>
	std::string subject;        // "mail delivery failed" / "… delayed" / "… failure"
	std::string message_id;     // without <>; required (compose throws when empty)
	std::string references;     // original Message-Id as in its header; empty: none
	std::string reporting_mta;  // our hostname; written "dns; host"
	// RFC 3464 2.2.1 Original-Envelope-Id from the ENVID parameter
	// (decoded, printable ASCII). Empty: no field.
	std::string envid;
	// "dns;<ehlo> ([ip])" (see received_from_mta_value); "dns;" is
	// prepended unless already there. Empty: no Received-From-MTA field.
	std::string received_from_mta;
	std::time_t arrival = 0;  // Arrival-Date (RFC 3464 2.2.5); 0: no field
	std::time_t date = 0;     // Date header; 0: now
	int tz_offset_s = 0;      // zone for all dates written
	// Human-readable explanation; line ends LF or CRLF, written as CRLF.
	std::string text_body;
	std::vector<DsnRecipient> recipients;  // at least one (compose throws otherwise)
	// The original message's header section, raw (with or without the empty
	// line ending it); copied as is (bare LF written as CRLF). Empty: the
	// DSN has two parts only.
	std::string original_headers;
	// The whole original message (RFC 3461 4.3 RET=FULL), returned as
	// message/rfc822 (message/global in the UTF-8 variant) instead of
	// original_headers. Empty: original_headers is used.
	std::string original_message;
};

// The whole DSN message (header section and body, CRLF line ends), RFC 3464
// 2 / RFC 3462 (multipart/report; report-type="delivery-status"), with
// Auto-Submitted: auto-replied (RFC 3834 5) so that no responder answers it:
//   1. text/plain (7BIT; quoted-printable UTF-8 if the text has non-ASCII),
//   2. message/delivery-status 7BIT,
//   3. text/rfc822-headers 7BIT with the original header section, or
//      message/rfc822 (7BIT, 8BIT when it holds non-ASCII) with the whole
//      original message when original_message is set.
// `utf8_variant` (for a receiver that supports SMTPUTF8; ignored unless
// msg.smtputf8) switches to RFC 6533: text/plain; charset=utf-8 8BIT,
// message/global-delivery-status 8BIT with "utf-8;" addresses, and
// message/global-headers 8BIT. An SMTPUTF8 original composed for an ASCII
// receiver gets its headers as text/rfc822-headers; charset=utf-8 in
// BASE64 (RFC 6533 6.3). Original headers with a line over 998 octets are
// also base64-encoded, so that no line of the DSN exceeds the limit of
// RFC 5322 2.1.1. `boundary_for_tests`, when not empty, is used as the MIME
// boundary instead of a random one. Throws std::invalid_argument when
// message_id or recipients are missing.
std::string compose_dsn(const DsnMessage&, bool utf8_variant, const std::string& boundary_for_tests = "");

// "dns;<ehlo> (<literal>)" for Received-From-MTA, the literal being as the
// Received header writes it: "[1.2.3.4]" or "[IPv6:…]". An EHLO with an
// address literal gives its address bare: "dns;::1 ([IPv6:::1])".
std::string received_from_mta_value(const std::string& ehlo, const std::string& ip_literal);

// One recipient that failed during an incoming SMTP transaction (§13).
struct IncomingFailure {
	std::string recipient;  // "local@domain", ASCII domain form
	std::string error;      // the error message given in the reply
	bool permanent = true;  // 5xx: "Permanent", 4xx: "Transient"
};

// The text of the DSN for recipients that failed in an incoming SMTP
// transaction: "Multiple delivery failures occurred.\n\n" when there is more
// than one, then per failure
// "<Permanent|Transient> delivery failure to:\n\n\t<recipient>\n\nError:\n\n\t<error>\n\n"
// (recipient first, then the error: doc/behaviour.md D10; the model swaps them).
std::string incoming_failure_text(const std::vector<IncomingFailure>& failures);

// Subjects as the model writes them; the success ones in the same style.
inline constexpr const char* subject_delivered = "mail delivered";
inline constexpr const char* subject_relayed = "mail relayed";
inline constexpr const char* subject_failed = "mail delivery failed";
inline constexpr const char* subject_delayed = "mail delivery delayed";
inline constexpr const char* subject_incoming_failure = "mail delivery failure";

// Queue DSN for a permanent failure (§12). `recipient` as the DSN reader
// knows it; `error` the error of the last attempt; `smtp_lines` the full
// reply of the remote server, if there was one (written after
// "Full SMTP response:").
std::string failed_dsn_text(const std::string& recipient, const std::string& error,
                            const std::vector<std::string>& smtp_lines = {});

// Queue DSN for a delayed delivery (§12, doc/behaviour.md D11): states when the
// remaining attempts will happen, from the queue's real schedule.
// `next_attempts` are the times of the attempts still to come, `now` the
// time of the failed attempt; each is written as the distance from `now`
// ("in 2 hours, 6 hours and 14 hours."), in whole hours from one hour on
// (rounded to the nearest), otherwise in minutes: the queue's retry
// jitter is minutes at most, so the rounding keeps the text truthful.
// `failure_notice`: whether a failure will be reported (RFC 3461 4.1: not
// when NOTIFY named only DELAY); the text promises a notice only then.
std::string delayed_dsn_text(const std::string& recipient, const std::string& error,
                             const std::vector<std::time_t>& next_attempts, std::time_t now, bool failure_notice = true,
                             const std::vector<std::string>& smtp_lines = {});

// Queue DSN for a success the sender asked for with NOTIFY=SUCCESS (RFC
// 3461 4.1): delivered into the recipient's mailbox here, or relayed to
// `host`, a next hop that does not offer DSN and so will not report
// further (RFC 3464 2.3.3 "relayed").
std::string success_dsn_text(const std::string& recipient, bool relayed, const std::string& host);

// The distance `seconds` as delayed_dsn_text writes it, close to the real
// schedule whatever queue.retry_base_s is (doc/behaviour.md D11): seconds
// below two minutes ("16 seconds", at least 1), minutes below an hour
// ("45 minutes", rounded), then hours ("14 hours") while the nearest whole
// hour is within 5%, else hours and minutes ("1 hour 20 minutes").
std::string describe_delay(std::time_t seconds);

}  // namespace tern::message
