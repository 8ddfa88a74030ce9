// SASL server mechanisms (RFC 4422) for SMTP AUTH (RFC 4954) as pure state
// machines: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), CRAM-MD5
// (RFC 2195), SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802, RFC 7677).
//
// No I/O and no database: the session feeds decoded client data and is told
// what to do next. The session, not the mechanism, handles:
//   * the AUTH command line itself, `AUTH MECH =` (empty initial response),
//     `AUTH MECH ` (missing initial response);
//   * base64: challenges here are raw bytes the session encodes into
//     `334 <base64>` (an empty challenge is `334 ` with its trailing space),
//     and client lines are decoded before next() (bad base64 →
//     `501 5.5.2 invalid base64: ...`);
//   * the `*` line that aborts an exchange (RFC 4954 4) →
//     `501 5.5.0 authentication aborted`, without calling next() (except
//     after a challenge with `next_line_raw` set, see Step);
//   * TLS requirements (doc/behaviour.md D5), failure counting, delays, limiters.
//
// Sequence: start() once; then, while the step is `challenge`, send it and
// pass the next decoded client line to next(); when the step is `lookup`,
// fetch the stored secrets of `username` (an email address) and call
// provide_secrets() with them, or with nullopt when there is no such
// account. `success` and `failure` are final. A call out of sequence
// returns a 451 4.3.0 failure.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sasl/secrets.h"

namespace tern::sasl {

struct Step {
	enum class Kind { challenge, lookup, success, failure };
	Kind kind = Kind::failure;
	std::string challenge;  // raw bytes, the session base64-encodes
	std::string username;   // for lookup and success: the login name, an email address
	// Failure reply: e.g. 535, "7.8" (the enhanced code without its class
	// digit, as smtp::SmtpError holds it), "bad user/pass".
	int code = 0;
	std::string secode;
	std::string text;
	// Set on a challenge after which the next client line is read but
	// neither base64-decoded nor treated as the `*` abort: the SCRAM
	// server-error message (`e=...`), which the client should answer with
	// `*`; whatever it sends, the session passes the raw line to next() and
	// gets the failure (doc/behaviour.md §11 step 5). Such a challenge
	// carries that coming failure's code, secode and text already: the
	// login has failed whatever the client sends next.
	bool next_line_raw = false;

	static Step make_challenge(std::string bytes);
	static Step make_lookup(std::string username);
	static Step make_success(std::string username);
	static Step make_failure(int code, std::string_view secode, std::string text);
};

// The unpredictable parts of challenges. Tests replace these to replay the
// RFC examples; system_entropy() uses getrandom(2) and the real clock. An
// empty function given to make_mechanism falls back to the system one.
struct Entropy {
	// SCRAM server nonce part, appended to the client's nonce: base64 of 12
	// random bytes (16 characters) in the system version.
	std::function<std::string()> scram_server_nonce;
	// CRAM-MD5 challenge: `<{random uint64}.{unix nanoseconds}@{hostname}>`
	// in the system version (RFC 2195 2 asks for a msg-id-like string).
	std::function<std::string(std::string_view hostname)> cram_md5_challenge;
};
Entropy system_entropy();

class Mechanism {
public:
	virtual ~Mechanism() = default;
	// The mechanism name, upper case (e.g. "SCRAM-SHA-256").
	virtual std::string_view name() const = 0;
	// `initial_response`: the decoded initial response of `AUTH MECH <b64>`
	// (empty string for `AUTH MECH =`), nullopt when the client sent none.
	virtual Step start(std::optional<std::string> initial_response) = 0;
	// The decoded client line answering the last challenge.
	virtual Step next(std::string client_data) = 0;
	// Answer to a `lookup` step.
	virtual Step provide_secrets(std::optional<StoredSecrets> secrets) = 0;
	// The login name exactly as the client sent it (PLAIN authcid, LOGIN
	// username, CRAM-MD5 user, SCRAM n=), "" until one was sent; for the
	// failed-login log line, which must never show the secret.
	const std::string& username_sent() const { return username_sent_; }

protected:
	std::string username_sent_;
};

// Mechanism names are case-insensitive (doc/behaviour.md D4); the session passes the
// name upper-cased (this also upper-cases, to be safe). nullptr for a
// mechanism tern does not implement. `hostname` goes into the CRAM-MD5
// challenge.
std::unique_ptr<Mechanism> make_mechanism(std::string_view name_upper, const std::string& hostname,
                                          Entropy entropy = system_entropy());

// Whether `AUTH MECH <initial-response>` is allowed: not for CRAM-MD5,
// where the server speaks first (RFC 2195 2); the session then refuses the
// line as a syntax error before anything else, as the model does.
inline bool takes_initial_response(std::string_view name_upper) { return name_upper != "CRAM-MD5"; }

// The EHLO `AUTH` keyword's value: the model's list, then LOGIN (doc/behaviour.md D15).
inline constexpr std::string_view advertised_mechanisms = "SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN";

}  // namespace tern::sasl
