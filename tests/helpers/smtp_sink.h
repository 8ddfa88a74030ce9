// A minimal SMTP server on a random loopback port that records the messages
// it is given, with configurable replies (for outbound-queue tests).
// Optionally it speaks TLS (STARTTLS or implicit, with tern's own server TLS
// code and a given certificate) and requires AUTH (PLAIN, LOGIN or
// SCRAM-SHA-256 through tern's server-side SASL mechanisms).
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <memory>
#include <vector>

namespace tern::net {
class TlsServerContext;
}
namespace tern::sasl {
struct StoredSecrets;
}

namespace tern::testing {

struct SinkMessage {
	std::string helo;
	std::string peer_ip;               // the address the connection came from
	std::string mail_from;             // between < and >
	std::vector<std::string> rcpt_to;  // between < and >, accepted ones only
	std::string data;                  // dot-unstuffed, CRLF line ends, without the final ".\r\n"
	int64_t received_ms = 0;           // now_ms() when the final dot arrived
	// now_ms() when the 2xx reply to the data was written (a write to a
	// peer that already died can still succeed locally); 0 when not (yet).
	int64_t acked_ms = 0;
	bool tls = false;       // the transaction ran inside TLS
	std::string auth_user;  // who logged in on that connection, "" when nobody
	std::string auth_mechanism;
	std::string mail_params;               // what followed "MAIL FROM:<…>" (leading space removed)
	std::vector<std::string> rcpt_params;  // the same for each accepted RCPT
};

// One AUTH exchange the sink saw.
struct SinkAuthAttempt {
	std::string mechanism;
	std::string username;  // as sent ("" when none was parsed)
	bool ok = false;
	std::string reply;  // the final reply line
};

class SmtpSink {
public:
	// Replies, as whole lines without CRLF. Change them before the client
	// connects (they are read under a lock for each command).
	struct Replies {
		std::string greeting = "220 sink.test.example ESMTP sink";
		std::string ehlo;  // set: the whole reply to EHLO instead of the extensions
		std::string mail = "250 2.1.0 ok";
		std::string rcpt = "250 2.1.5 ok";
		std::string data = "354 go ahead";
		std::string data_end = "250 2.0.0 queued";
		// Waits this long after the final dot before sending data_end
		// (a slow remote, for crash tests); the message is recorded after it.
		int data_end_delay_ms = 0;
		// Waits this long after QUIT before the 221 (a remote slow to say
		// goodbye: the client must not depend on it).
		int quit_delay_ms = 0;
	};

	struct Options {
		std::string cert_file, key_file;  // set: offer STARTTLS (or implicit TLS)
		bool implicit_tls = false;        // TLS from the first byte
		// Set: AUTH is offered (after TLS when there is TLS) and MAIL needs it.
		std::string auth_username, auth_password;
		std::string auth_mechanisms = "SCRAM-SHA-256 PLAIN LOGIN";  // EHLO AUTH keyword
		// A server that does not know the password: the SCRAM server-final
		// message carries a wrong signature.
		bool scram_wrong_server_signature = false;
		// Extra EHLO keywords: DSN (RFC 3461), REQUIRETLS (RFC 8689, only
		// inside TLS, as a real server), LIMITS with this text (RFC 9422),
		// e.g. "RCPTMAX=1".
		bool offer_dsn = false;
		bool offer_requiretls = false;
		std::string limits;
		// Where to listen: "127.0.0.1" or "::1", on a free port or this one
		// (a second sink on the other family of one host's port).
		std::string listen_ip = "127.0.0.1";
		uint16_t listen_port = 0;
	};

	SmtpSink();  // binds 127.0.0.1:0 and starts its thread
	explicit SmtpSink(Options options);
	~SmtpSink();
	SmtpSink(const SmtpSink&) = delete;
	SmtpSink& operator=(const SmtpSink&) = delete;

	uint16_t port() const { return port_; }
	void set_replies(const Replies& replies);
	// Serve each connection on its own thread from now on (by default one
	// session at a time), like a real server taking parallel deliveries.
	void set_concurrent(bool concurrent) { concurrent_ = concurrent; }
	std::vector<SinkMessage> messages() const;
	int connections() const { return connections_; }
	// QUIT commands received, over all connections.
	int quits() const { return quits_; }
	// Complete DATA sections read so far, whatever their reply (counted when
	// the final dot arrives, before any data_end_delay_ms).
	int data_received() const { return data_received_; }
	// Polls until at least n messages were received or timeout_ms passed.
	bool wait_for_messages(size_t n, int timeout_ms = 10000) const;
	std::vector<SinkAuthAttempt> auth_attempts() const;
	// Connections whose TLS handshake failed (e.g. the client refused the certificate).
	int tls_failures() const { return tls_failures_; }
	void stop();

private:
	void serve();
	void session(int fd, const std::string& peer_ip);
	void start();

	int listen_fd_ = -1;
	uint16_t port_ = 0;
	std::atomic<bool> stop_{false};
	std::atomic<int> connections_{0};
	std::atomic<int> quits_{0};
	std::atomic<int> data_received_{0};
	std::atomic<bool> concurrent_{false};
	std::atomic<int> tls_failures_{0};
	Options options_;
	std::shared_ptr<const net::TlsServerContext> tls_context_;
	std::shared_ptr<const sasl::StoredSecrets> secrets_;
	std::vector<SinkAuthAttempt> auth_attempts_;
	std::thread thread_;
	std::vector<std::thread> session_threads_;  // used by serve() only, joined by stop()
	mutable std::mutex mutex_;
	Replies replies_;
	std::vector<SinkMessage> messages_;
};

}  // namespace tern::testing
