// SASL client mechanisms for SMTP AUTH towards a smarthost (RFC 4954 4):
// SCRAM-SHA-256 (RFC 5802, RFC 7677), PLAIN (RFC 4616) and LOGIN
// (draft-murchison-sasl-login), as pure state machines. No I/O: the SMTP
// client sends `AUTH <name> [<base64 initial response>]`, passes every
// decoded 334 challenge to respond() and, on 235, calls finished().
//
// SCRAM authenticates the server too (RFC 5802 3): its final message carries
// ServerSignature, which respond() checks; a wrong or missing signature is an
// error, so a server that merely says 235 without knowing the password is not
// trusted with the message.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::sasl {

struct ClientStep {
	bool ok = false;
	std::string response;  // raw bytes to send base64-encoded (may be empty)
	std::string error;     // when !ok: why; the client then aborts with "*"
};

class ClientMechanism {
public:
	virtual ~ClientMechanism() = default;
	// Upper case, as sent in the AUTH command.
	virtual std::string_view name() const = 0;
	// The initial response sent on the AUTH line, nullopt for none.
	virtual std::optional<std::string> initial_response() = 0;
	// Answer to one decoded 334 challenge.
	virtual ClientStep respond(std::string_view challenge) = 0;
	// After 235: "" when the exchange completed as the mechanism requires
	// (SCRAM: the server signature was seen and verified), else why not.
	virtual std::string finished() const = 0;
};

// The client nonce for SCRAM; tests replace it to replay RFC 7677's example.
// The default is base64 of 18 random bytes.
using NonceSource = std::function<std::string()>;

// Our preference among the mechanisms a server offers in its EHLO AUTH
// keyword (names case-insensitive): SCRAM-SHA-256, which never reveals the
// password, then PLAIN, then LOGIN. "" when none of them is offered.
std::string choose_client_mechanism(const std::vector<std::string>& offered);

// nullptr for a name not in the list above.
std::unique_ptr<ClientMechanism> make_client_mechanism(std::string_view name, const std::string& username,
                                                       const std::string& password, NonceSource nonce = {});

// RFC 5802 5.1 saslname: ',' and '=' written as "=2C" and "=3D".
std::string scram_escape_name(std::string_view name);

// Most PBKDF2 iterations the SCRAM client accepts from a server: the
// derivation runs on the event loop, and a hostile or broken server must not
// stall it (RFC 7677 4 asks for at least 4096; common servers use 4096).
inline constexpr int scram_client_max_iterations = 65536;

}  // namespace tern::sasl
