// The client side of Dovecot's authentication protocol (the "auth-client"
// socket, protocol version 1), as a pure state machine: tern relays a SMTP
// AUTH exchange (RFC 4954) to Dovecot step by step and Dovecot checks the
// credentials. No I/O: the caller writes the lines this returns and feeds
// the server's lines back one at a time (without their LF).
//
// The protocol is line based, fields separated by TAB:
//   C: VERSION 1 <minor>          C: CPID <pid>
//   S: VERSION 1 <minor>, MECH <name> [flags]..., SPID, CUID, COOKIE, DONE
//   C: AUTH <id> <mech> service=smtp [secured] [rip=..] [resp=<base64>]
//   S: CONT <id> <base64>         C: CONT <id> <base64>
//   S: OK <id> user=<name> [resp=<base64>]   or   FAIL <id> [reason=..] [temp]
// Values use Dovecot's tab-escaping: \001 followed by 0 (NUL), 1 (\001),
// t (TAB), r (CR) or n/l (LF).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::sasl::dovecot {

// The mechanisms tern relays, in the order the EHLO AUTH keyword lists them.
// Others (CRAM-MD5, GSSAPI, ...) need more than a relay of opaque lines or
// are not worth offering on submission.
inline constexpr std::string_view relayed_mechanisms[] = {"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "LOGIN"};

bool is_relayed(std::string_view mechanism_upper);

// The EHLO AUTH value for what Dovecot offers: the relayed mechanisms it
// lists, in tern's order; "" when none.
std::string advertised_for(const std::vector<std::string>& offered);

std::string escape(std::string_view value);
std::string unescape(std::string_view value);

// What the SMTP client asked for.
struct AuthRequest {
	std::string mechanism;                        // upper case, one of relayed_mechanisms
	std::optional<std::string> initial_response;  // decoded bytes; "" for `AUTH MECH =`
	bool secured = false;                         // TLS or a loopback client
	std::string remote_ip, local_ip;
	int remote_port = 0, local_port = 0;
};

struct Event {
	enum class Kind {
		none,               // nothing to act on yet (a handshake line)
		handshake_done,     // DONE seen: mechanisms() is known
		challenge,          // CONT: `data` goes to the client as a 334
		success,            // OK: `user` logged in; `data` set when a final response came with it
		failure,            // FAIL: bad credentials (or refused); `reason` for the log
		temporary_failure,  // FAIL with temp: Dovecot could not check now
		protocol_error,     // a line that breaks the protocol; `reason` says which
	};
	Kind kind = Kind::none;
	std::string data;       // raw bytes
	bool has_data = false;  // success: resp= was present
	std::string user;       // success (and failure when given): user=
	std::string reason;
};

class ClientProtocol {
public:
	explicit ClientProtocol(unsigned request_id = 1) : id_(request_id) {}

	// The lines the client sends on connecting (VERSION and CPID).
	static std::string hello(long pid);

	// One line from the server, without its LF (a CR before it is dropped).
	Event feed(std::string_view line);

	// After handshake_done: the AUTH line. Empty when the handshake is not
	// done or a request was already made.
	std::string auth(const AuthRequest& request);
	// After a challenge: the client's decoded answer as a CONT line.
	// Empty when no challenge is pending.
	std::string cont(std::string_view data);

	bool handshake_done() const { return state_ != State::version && state_ != State::handshake; }
	// The mechanisms Dovecot offers to clients (upper case; "private" ones
	// left out), in its order.
	const std::vector<std::string>& mechanisms() const { return mechanisms_; }
	bool offers(std::string_view mechanism_upper) const;

private:
	enum class State { version, handshake, ready, waiting, challenged, finished, broken };
	Event error(std::string why);
	Event reply(std::string_view command, const std::vector<std::string_view>& fields);

	State state_ = State::version;
	unsigned id_;
	std::vector<std::string> mechanisms_;
};

// The login name in a client's SASL message, for the failed-login log line
// (never the secret): PLAIN's authcid, LOGIN's first answer, SCRAM's n=.
// `index` counts the client's messages from 0 (the initial response is
// message 0). "" when the message carries none.
std::string login_name_in(std::string_view mechanism_upper, int index, std::string_view message);

}  // namespace tern::sasl::dovecot
