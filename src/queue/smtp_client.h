// A non-blocking SMTP client on the libev loop: one connection to one
// address, one mail transaction (one message to one or more recipients of
// the same destination), then QUIT. Used by the queue for MX and smarthost
// delivery (RFC 5321 client side).
//
// The body is never held in memory whole: the client asks its owner for the
// next chunk (`request_chunk(offset)`); the owner reads it on a worker thread
// (doc/design.md: the loop never blocks on disk) and hands it back with
// supply_chunk(). The owner must keep the client alive until `done` ran, and
// must not destroy it from inside `done` (defer the destruction).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/watchers.h"
#include "net/tls.h"
#include "net/transport.h"
#include "queue/outbound_util.h"
#include "sasl/client.h"

namespace tern::queue {

// implicit: TLS from the first byte (port 465 style, RFC 8314 3.3).
enum class TlsMode { none, opportunistic, required, implicit };

// RFC 5321 4.5.3.2 client timeouts, in seconds.
struct ClientTimeouts {
	double connect = 30;      // not in the RFC; a dead address should not cost minutes
	double greeting = 300;    // 4.5.3.2.1
	double command = 300;     // EHLO/STARTTLS/RSET/QUIT: like MAIL
	double mail = 300;        // 4.5.3.2.2
	double rcpt = 300;        // 4.5.3.2.3
	double data_init = 120;   // 4.5.3.2.4
	double data_block = 180;  // 4.5.3.2.5
	double data_end = 600;    // 4.5.3.2.6
	double tls_handshake = 60;
};

struct ClientOptions {
	std::string ip;  // address to connect to (IPv4 or IPv6 text)
	int port = config::default_smtp_port;
	// The local address to connect from, of ip's family
	// (config::Config::OutboundSource); "" lets the kernel choose.
	std::string source_ip;
	std::string server_name;  // host name, for SNI and logs
	std::string ehlo_name;    // our hostname
	TlsMode tls = TlsMode::opportunistic;
	std::shared_ptr<const net::TlsClientContext> tls_context;  // required unless tls == none
	// The peer's certificate chain and host name must verify against the
	// context's CAs; otherwise the host fails (smarthost "required" and
	// "implicit"). The context must have been built with a CA file.
	bool verify_peer = false;
	// verify_peer because the destination's MTA-STS policy (RFC 8461)
	// says enforce, not for a smarthost: only the log line differs.
	bool mta_sts = false;
	// AUTH after EHLO (RFC 4954) when auth_username is set: SCRAM-SHA-256,
	// PLAIN or LOGIN, whichever the server offers first in that order.
	std::string auth_username;
	std::string auth_password;
	// Credentials may cross an unencrypted connection only when this is set
	// (smarthost_tls "none"); otherwise a server without TLS is a failure.
	bool auth_in_clear_ok = false;
	std::string from;  // reverse path without <>
	std::vector<std::string> recipients;
	bool has_8bit = false;
	bool smtputf8 = false;
	int64_t size = 0;    // prefix + body, for SIZE=
	std::string prefix;  // bytes sent before the body
	// Optional whole message (prefix included) sent instead of prefix + body
	// when the server offers SMTPUTF8, with the SMTPUTF8 parameter: the
	// UTF-8 variant of a DSN (RFC 6533).
	std::string utf8_variant;
	// RFC 8689 4.2.1 REQUIRETLS: the connection must use TLS with a
	// verified certificate (verify_peer) and the server must offer
	// REQUIRETLS; it then gets `MAIL ... REQUIRETLS`. Otherwise the host is
	// refused with ClientResult::requiretls_unmet.
	bool requiretls = false;
	// RFC 8689 4.3 "TLS-Required: No": a certificate that does not verify
	// is logged and the message goes on over that TLS session.
	bool tls_required_no = false;
	// DSN parameters (RFC 3461 4), passed on when the server offers DSN:
	// RET and ENVID on MAIL, NOTIFY and ORCPT per recipient (same order as
	// recipients; stored forms, see smtp/dsn_params.h).
	std::string dsn_ret;
	std::string envid;
	std::vector<int> notify;
	std::vector<std::string> orcpt;
	ClientTimeouts timeouts;
	uint64_t log_id = 0;  // shows as cid in log lines
};

struct RecipientResult {
	bool delivered = false;
	bool permanent = false;  // 5xx: do not retry
	// Not sent: the server's LIMITS RCPTMAX (RFC 9422 4.1) was reached in
	// this transaction; the queue sends it in another one at once.
	bool not_attempted = false;
	std::string error;  // reply summary or local reason; "" when delivered
	// The enhanced code of the server's refusal ("5.7.1"); "" when it gave
	// none or the failure was ours.
	std::string enhanced;
};

struct ClientResult {
	// The transaction never started on this host (connect failure, bad
	// greeting, EHLO/STARTTLS trouble, I/O error or timeout before MAIL):
	// the caller tries the next address/host. `recipients` then all carry
	// `error` as a temporary failure.
	bool host_failure = false;
	// The failure happened in or because of TLS (handshake error); the model
	// retries such a host once without TLS.
	bool tls_failed = false;
	std::string error;
	// With host_failure: the server's reply that failed the host (its
	// greeting, or its answer to EHLO, HELO, STARTTLS or AUTH), "" when no
	// reply did (connect, TLS, I/O, a timeout).
	std::string reply;
	std::vector<RecipientResult> recipients;  // same order as options.recipients
	std::string tls_comment;                  // "(TLS1.2 <suite>)" when TLS was used
	// The host failed because REQUIRETLS could not be met there (no TLS,
	// unverified certificate, REQUIRETLS not offered): RFC 8689 4.2.1.
	bool requiretls_unmet = false;
	// The server offered DSN (RFC 3461 4): it reports further itself, so
	// no "relayed" notice is due for NOTIFY=SUCCESS.
	bool peer_dsn = false;
};

class SmtpClient {
public:
	using ChunkRequest = std::function<void(int64_t offset)>;
	using Done = std::function<void(ClientResult)>;
	SmtpClient(struct ev_loop* loop, ClientOptions options, ChunkRequest request_chunk, Done done);
	~SmtpClient();
	SmtpClient(const SmtpClient&) = delete;
	SmtpClient& operator=(const SmtpClient&) = delete;

	// Starts connecting. `done` runs exactly once, later, on the loop.
	void start();
	// The answer to a request_chunk: bytes at the requested offset (empty
	// with eof at the end), or a read error.
	void supply_chunk(std::string data, bool eof, const std::string& error = {});
	// Asks to be told the transaction's result as soon as the reply to the
	// end of data arrived (set before start()). The client then waits,
	// sending nothing, until resume() — the owner records the result
	// durably first, so a crash after that never repeats the delivery —
	// and only then says QUIT and calls `done` as usual.
	void on_data_result(std::function<void(const ClientResult&)> record) { record_result_ = std::move(record); }
	void resume();
	// Aborts without calling `done` (queue shutdown).
	void abort();

	enum class State {
		idle,
		connecting,
		greeting,
		ehlo,
		helo,
		starttls,
		tls_handshake,
		auth,
		mail,
		rcpt,
		data,
		body,
		data_end,
		recording,
		quit,
		finished,
	};
	State state() const { return state_; }

private:
	void on_io(int revents);
	void on_timeout();
	// The client's error boundary: what throws in a step of the session
	// fails the attempt as a protocol error would, instead of leaving the
	// session waiting for its timeout (doc/design.md "The connection").
	template <class F>
	void within_boundary(F&& step);
	// A reply or an input the session cannot go on with: before MAIL the
	// host failed (the next one is tried), after it the transaction.
	void fail_attempt(const std::string& error);
	void on_connected();
	// Binds the socket to options_.source_ip when it is of the
	// destination's family; false when that failed (the host failed).
	bool bind_source(int fd, bool v6);
	void read_input();
	void process_input();
	void handle_reply(Reply reply);
	void on_greeting_reply(const Reply& reply);
	void on_ehlo_reply(const Reply& reply);
	void read_ehlo_extensions(const Reply& reply);
	void on_helo_reply(const Reply& reply);
	void on_starttls_reply(const Reply& reply);
	void on_mail_reply(const Reply& reply);
	void on_rcpt_reply(const Reply& reply);
	void on_data_reply(const Reply& reply);
	void on_data_end_reply(const Reply& reply);
	// `logged` replaces the line in the trace log (credentials).
	void send_command(const std::string& line, State next, double timeout, const char* logged = nullptr);
	void flush_output();
	void update_watch();
	void send_ehlo(bool after_tls);
	void send_mail();
	void after_ehlo();
	void start_auth();
	void continue_auth(const Reply& reply);
	// `reply`: the server's reply that failed the host, when one did.
	void send_next_rcpt_or_data();
	void start_tls();
	void continue_handshake();
	void pump_body();
	void connection_lost(const std::string& why);
	void fail_host(const std::string& error, bool tls_failed = false, const std::string& reply = "");
	// The host failed on the server's `reply` to `what`: the error quotes it
	// and the delivery notice reports it (Remote-MTA, Diagnostic-Code).
	void fail_host_on_reply(const std::string& what, const Reply& reply, bool tls_failed = false);
	// fail_host for a host still talking to us: QUIT, not waited for.
	void fail_host_talking(const std::string& error, bool tls_failed = false, const std::string& reply = "");
	// A host that cannot meet REQUIRETLS: QUIT when the session is up.
	void fail_requiretls(const std::string& error, bool quit);
	void mark_host_failure(const std::string& error, bool tls_failed, const std::string& reply);
	// `enhanced`: the server's enhanced code when a reply of its failed it.
	void fail_transaction(const std::string& error, bool permanent, const std::string& enhanced = {});
	// The server's refusal: its summary, class and enhanced code.
	void fail_transaction(const Reply& reply);
	void finish_with_quit();
	void complete();

	struct ev_loop* loop_;
	ClientOptions options_;
	ChunkRequest request_chunk_;
	Done done_;
	std::function<void(const ClientResult&)> record_result_;
	core::IoWatcher io_;
	core::TimerWatcher timer_;
	// The connection, plain or TLS (owns the socket); null before start()
	// and once finished.
	std::unique_ptr<net::Transport> transport_;
	State state_ = State::idle;
	std::string input_;
	std::string output_;
	ReplyParser parser_;
	DotStuffer stuffer_;
	ClientResult result_;

	// What the server's EHLO reply offered.
	bool esmtp_ = false;
	bool offers_starttls_ = false, offers_8bitmime_ = false, offers_smtputf8_ = false;
	bool offers_dsn_ = false, offers_requiretls_ = false;
	size_t rcpt_max_ = 0;        // LIMITS RCPTMAX (RFC 9422); 0: not announced
	int64_t offered_size_ = -1;  // -1: SIZE not offered; 0: no fixed limit
	bool tls_active_ = false;
	bool greeted_ = false;
	std::vector<std::string> offered_auth_;  // mechanisms in the EHLO AUTH keyword
	std::unique_ptr<sasl::ClientMechanism> auth_;
	bool auth_aborting_ = false;  // sent "*", waiting for the 501
	std::string auth_error_;

	size_t next_rcpt_ = 0;
	size_t accepted_ = 0;
	int64_t body_offset_ = 0;
	bool chunk_pending_ = false;
	bool body_eof_ = false;
	bool completed_ = false;
	bool use_utf8_variant_ = false;
	bool peer_gone_ = false;  // the server closed while the result was being recorded
};

}  // namespace tern::queue
