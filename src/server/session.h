// The SMTP session: one explicit state struct per connection, advanced by
// callbacks from the loop (doc/design.md "The connection"). Everything that
// reaches a Connection from outside its own watchers goes through a
// ConnHandle looked up in the server's table.
#pragma once
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/conn_table.h"
#include "decide/recipient.h"
#include "core/watchers.h"
#include "net/listener.h"
#include "net/tls.h"
#include "net/transport.h"
#include "sasl/mechanism.h"
#include "store/maildir.h"
#include "message/dsn.h"
#include "message/header_parse.h"
#include "message/header_scan.h"
#include "message/headers.h"
#include "server/dovecot_auth_client.h"
#include "server/early_lookup.h"
#include "server/inbound.h"
#include "server/local_delivery.h"
#include "server/localserve.h"
#include "server/outbound.h"
#include "server/outcome.h"
#include "server/submit.h"
#include "smtp/chunk_reader.h"
#include "smtp/data_decoder.h"
#include "smtp/parser.h"
#include "smtp/reply.h"
#include "util/ipaddr.h"
#include "util/unique_fd.h"

namespace tern::server {

class Server;
class MilterSession;
class OutboundQueue;
struct MilterVerdict;
enum class MilterStage;

enum class SessionState : uint8_t {
	command,        // waiting for / reading command lines
	data,           // inside DATA or a BDAT chunk, decoding message bytes to the temp file
	waiting,        // a command is suspended on a worker job or timer; reading stops
	closing,        // flushing the last reply, then close
	tls_handshake,  // STARTTLS or implicit TLS handshake in progress
	auth_exchange,  // AUTH: waiting for the client's next SASL line
	proxy_header,   // waiting for the PROXY protocol header (no greeting yet)
};

// The transaction's recipient and its failure record live with the
// recipient decision (decide/recipient.h).
using Recipient = decide::Recipient;
using DeliverError = decide::DeliverError;

// The mail transaction (RFC 5321 3.3): reset by RSET, HELO/EHLO, and any
// final reply to DATA (doc/behaviour.md D2).
struct Transaction {
	bool has_mail = false;
	std::optional<smtp::Address> mail_from;  // nullopt with has_mail = null sender
	bool smtputf8 = false;
	bool body_8bitmime = false;
	// The message's data held 8-bit bytes (set at its end; port 25 takes
	// them without BODY=8BITMIME, as the model does).
	bool data_8bit = false;
	// What goes on with the message: BODY=8BITMIME when either says so
	// (RFC 6152 2).
	bool body_8bit() const { return body_8bitmime || data_8bit; }
	smtp::DsnRet dsn_ret = smtp::DsnRet::unset;  // RFC 3461 4.3
	std::string envid;                           // RFC 3461 4.4, decoded ("" = none)
	bool requiretls = false;                     // RFC 8689 4.1
	std::vector<Recipient> recipients;
	std::shared_ptr<EarlySpf> early_spf;  // port 25: started when MAIL FROM is accepted
	// Port 25: the MAIL FROM domain's record, asked for when MAIL FROM is
	// accepted; another one once the From header names another domain.
	std::shared_ptr<EarlyDmarc> early_dmarc;
};

// How a dropped message file goes: `now`, unlinked on the loop, so that when
// RSET's reply goes out nothing of the transaction is left in the spool;
// `on_worker` everywhere else, as unlinking can wait on the disk
// (message_file.h remove_file_on_worker).
enum class FileRemoval { now, on_worker };

// A received message between the end of its data and the writing of its
// copies: the spool file's path and, unless milters rewrote the file, its
// descriptor still open with the bytes written, for the Maildir writer,
// and its header section as parsed while DATA streamed in, for the
// analysis. One value, so that whoever takes the message over
// (std::exchange) takes all of it and the connection keeps none.
struct ReceivedMessage {
	std::string path;
	core::SpoolFile spool;
	std::optional<message::HeaderSection> header;
	// Whether the data had the empty line ending a header section; without
	// it the stored copy gets one after the added fields, so the data is
	// the body (as the model stores it).
	bool header_separator = true;
};

// State that exists only while DATA is being received; allocated at DATA
// and freed after, so idle connections do not pay for it. With BDAT it lives
// from the first chunk to the LAST one (or the end of the transaction).
struct DataInProgress {
	explicit DataInProgress(smtp::BareNewlines mode, smtp::Framing framing = smtp::Framing::dot_stuffed)
		: decoder(mode, framing) {}
	smtp::DataDecoder decoder;
	UniqueFd fd;  // closed after a failed write (write_errno says why)
	std::string path;
	std::string decoded;  // reused scratch for decoder output
	double started = 0;   // ev_now at 354, or at the first BDAT
	bool too_large = false;
	int write_errno = 0;  // why writing the temp file failed; 0 while it has not
	bool write_failed() const { return write_errno != 0; }
	int64_t rewritten_size = -1;  // the file's size after milters changed it (server/milter.cpp)
	// Port 25: the header section while it streams in, until the From
	// domain's DMARC lookup is started (server/data.cpp); then empty.
	std::optional<message::HeaderScan> header_scan;
	// Then the header section it collected, parsed (none when it was
	// longer than the scan takes, or did not parse).
	std::optional<message::HeaderSection> header;
	int64_t stored_size() const {
		return rewritten_size >= 0 ? rewritten_size : static_cast<int64_t>(decoder.size());
	}

	// BDAT (server/bdat.cpp): the chunk being read, and the reply that
	// refuses it once its octets are read and dropped (RFC 3030 2, 4).
	bool chunked = false;
	smtp::ChunkReader chunk;
	std::optional<smtp::SmtpError> chunk_refusal;
	bool refusal_ends_transaction = false;
};

// What the session knows beside its SessionState: facts that hold across
// states, each set and cleared at one documented point. (The transport's
// own facts, eof and TLS, stay with the I/O code.)
struct SessionFlags {
	// SIGTERM arrived: 421 once the command in flight is done.
	bool shutdown_requested = false;
	// Holds a slot in the connections limiter, given back on close.
	bool counted_connection = false;
	// process_input is on the stack (the TLS upgrade can reach it again).
	bool in_process_input = false;
	// A suspended command waits for its completion or stall timer; cleared
	// when it resumes, or when the wait times out (a late completion then
	// finds nothing to resume).
	bool awaiting_completion = false;
	// Slow mode (doc/behaviour.md §1): from the 3rd failed AUTH or a refusal
	// by analysis until a successful AUTH.
	bool slow = false;
};

// The AUTH attempt in progress (server/auth.cpp), beside its mechanism.
struct AuthAttemptState {
	// From AUTH until its final reply (or the client hanging up).
	bool in_progress = false;
	// This attempt's failure is already counted (once per attempt).
	bool failure_recorded = false;
	// The next SASL line is not base64 (the SCRAM error acknowledgement).
	bool raw_next = false;
};

struct Connection {
	// The stream is the accepted socket (net::FdStream) in the daemon, a
	// script in the session tests; the peer's addresses come from a
	// socket's fd, a script's driver sets them.
	Connection(Server& srv, core::ConnHandle self, uint64_t cid, std::unique_ptr<net::ByteStream> stream,
	           const net::ListenSocket& ls, std::shared_ptr<const config::Config> cfg);
	~Connection();

	// Wire events.
	void on_io(int revents);
	void on_deadline();
	void on_slow_tick();   // slow mode: the next byte of output may go
	void start();          // PROXY header or begin_session
	void begin_session();  // limiter checks and greeting
	// What the limiters said when the connection was accepted.
	enum class Admission : uint8_t { pending, admitted, rate_too_high, auth_failures, too_many_connections };
	Admission admit();
	void read_proxy_header();

	// Input.
	void read_available();
	void process_input();
	void process_input_loop();
	void end_input_pass();
	Outcome handle_line(std::string_view line);
	Outcome dispatch(std::string_view verb_lower, std::string_view args);
	// The one path from "decided" to "written": writes the outcome's reply,
	// then enters the state it leads to (doc/design.md "Handlers return
	// outcomes"). Handlers return outcomes, completions of suspended
	// commands have theirs applied by resume(), and the message pipeline's
	// last step applies its own.
	void apply(const Outcome& outcome);

	// Output.
	// Puts one reply in the output buffer (the received-id appended to a
	// refusal that asks for it); only apply() calls it.
	void write_reply(const smtp::SmtpError& reply, bool verbatim);
	// The state an applied outcome leads to, once its reply (if any) is in
	// the output buffer.
	void enter_after_reply(SessionState next, bool replied);
	void flush();
	void close_after_flush();
	void close_now(std::string_view why);
	void update_watchers();
	// Slow mode with a delay configured: output leaves one byte per
	// delays_ms.bad_client and every line read waits that long. Not once
	// the server shuts down: its 421 goes at once (doc/behaviour.md
	// "Logs, signals, metrics").
	bool slow_pace() const { return flags.slow && cfg->delays_ms.bad_client > 0 && !flags.shutdown_requested; }
	double bad_client_delay() const { return static_cast<double>(cfg->delays_ms.bad_client) / 1000.0; }
	void start_tls();
	void continue_handshake();
	void arm_deadline();
	// Every change of `state` goes through here (doc/design.md "Handlers
	// return outcomes"); debug builds check the state's invariants.
	void enter_state(SessionState next);

	// Commands (server/commands.cpp). Each returns its Outcome.
	Outcome cmd_hello(std::string_view args, bool ehlo);
	Outcome hello_accepted(smtp::HelloArg h, bool ehlo);
	// The lines of the EHLO reply: the name, then the extensions offered.
	std::vector<std::string> ehlo_lines() const;
	Outcome cmd_starttls(std::string_view args);
	Outcome cmd_auth(std::string_view args);
	Outcome cmd_mail(std::string_view args);
	smtp::Result<smtp::MailArgs> mail_args(std::string_view args) const;
	smtp::Status sender_allowed(const smtp::MailArgs& m);
	Outcome mail_accepted(smtp::MailArgs m);
	Outcome cmd_rcpt(std::string_view args);
	Outcome rcpt_accepted(smtp::RcptArgs r);
	Outcome cmd_data(std::string_view args);
	Outcome cmd_bdat(std::string_view args);
	Outcome cmd_rset(std::string_view args);
	Outcome cmd_vrfy(std::string_view args, bool expn);
	Outcome cmd_help(std::string_view args);
	Outcome cmd_noop(std::string_view args);
	Outcome cmd_quit(std::string_view args);

	// Localserve mode, consulted as a policy (server/localserve.h).
	LocalservePolicy localserve() const { return LocalservePolicy(*cfg); }
	// A special localpart starting with `prefix` at MAIL/RCPT: the refusal,
	// or suspended when the command was stalled (timeout); nullopt when
	// nothing applies.
	std::optional<Outcome> localserve_command_failure(std::string_view prefix, std::string_view localpart);
	// Suspends the session and applies `outcome` after `seconds` (never a
	// sleep: the loop keeps serving everyone else).
	void stall_then_reply(double seconds, Outcome outcome);
	void stall_localserve_timeout(std::string_view step, std::string_view secode);
	// Suspends the session and runs `cont` after `seconds`, then resumes input.
	void stall_then(double seconds, std::function<void(Connection&)> cont);

	// AUTH (server/auth.cpp).
	// Each step of the exchange returns its Outcome: a 334 challenge that
	// enters auth_exchange, 235, a failure, or suspended on a lookup.
	Outcome auth_begin(const std::string& args);
	smtp::Result<std::optional<std::string>> initial_response_for(const smtp::AuthArgs& a) const;
	Outcome auth_line(std::string_view line);
	Outcome auth_step(sasl::Step step);
	Outcome auth_failed(const smtp::SmtpError& e, std::string_view mechanism_name = {});
	void record_auth_failure(std::string_view result);
	Outcome auth_temporary_failure();
	// The failed-login line fail2ban reads (contrib/fail2ban/); `code` is the
	// reply code, or "closed" when the client hung up during the exchange.
	void log_auth_failure(std::string_view mechanism_name, const std::string& code) const;
	std::string login_account(const std::string& login) const;
	Outcome auth_succeeded(const std::string& account);
	std::string auth_mechanism_name() const;
	// AUTH relayed to Dovecot (server/auth_dovecot.cpp).
	Outcome dovecot_auth_begin(const smtp::AuthArgs& a);
	Outcome dovecot_auth_answer(std::string data);
	Outcome dovecot_auth_outcome(DovecotAuthClient::Outcome o);
	void end_dovecot_relay();
	std::string dovecot_account(const std::string& dovecot_user) const;
	std::string advertised_auth_mechanisms() const;

	bool tls_required_for_auth() const;
	smtp::Status need_hello() const;
	// HELO/EHLO, AUTH on submission, TLS where required: what MAIL, RCPT,
	// DATA and BDAT need (RFC 5321 4.1.4, RFC 6409 4.3, RFC 3207 4).
	smtp::Status mail_commands_allowed() const;
	smtp::ParseMode parse_mode() const;
	mailauth::SpfArgs spf_args() const;
	void rset();

	// DATA (server/data.cpp).
	smtp::Result<std::unique_ptr<DataInProgress>> open_data_file(smtp::Framing framing);
	void write_decoded();
	void start_early_dmarc();
	void look_up_dmarc_early(const std::string& domain);
	void feed_data();
	// The end of the message: refused, or handed to delivery or submission
	// (which answer through apply), or suspended on the milters.
	Outcome finish_data();
	smtp::Status message_acceptable(bool write_failed) const;
	// Refuses the message being received with one error reply: its files
	// go and the transaction ends. message_refusal returns that outcome,
	// refuse_message applies it.
	Outcome message_refusal(const smtp::SmtpError& e);
	void refuse_message(const smtp::SmtpError& e);
	// BDAT (server/bdat.cpp).
	smtp::Status data_commands_allowed() const;
	void feed_chunk();
	void store_chunk_octets(std::string_view octets, bool last_of_message);
	void end_chunk();
	// The reply to a BDAT once its chunk is read (RFC 3030 2, 4).
	Outcome chunk_outcome();
	void deliver_local();
	void refuse_unknown_recipients();
	LocalEnvelope local_envelope() const;
	void write_copies(std::shared_ptr<std::vector<LocalCopy>> copies, std::vector<std::string> copy_rcpts,
	                  std::vector<DeliverError> errors, ReceivedMessage message,
	                  std::shared_ptr<InboundAnalysis> an = nullptr);
	void delivery_done(std::vector<DeliverError> errors, std::shared_ptr<InboundAnalysis> an = nullptr);
	struct Notice {
		message::DsnMessage dsn;
		OutboundRecipient to;
	};
	std::optional<Notice> incoming_dsn(const InboundAnalysis& an, const std::vector<DeliverError>& errors) const;
	void queue_dsn(message::DsnMessage dsn, OutboundRecipient to, std::function<void()> queued);
	// The 250 after DATA, once every copy and notice is stored.
	void message_delivered(size_t delivered, const std::string& reasons);
	// Port 25 (server/deliver.cpp): iprev, SPF, DKIM, DMARC, DNSBL, then the
	// decision, then the copies.
	void analyze_inbound();
	void analysis_lookups(std::shared_ptr<InboundAnalysis> an);
	void analysis_verify(std::shared_ptr<InboundAnalysis> an);
	void analysis_decide(std::shared_ptr<InboundAnalysis> an);
	void analysis_dnsbl(std::shared_ptr<InboundAnalysis> an, size_t zone);
	void analysis_history(std::shared_ptr<InboundAnalysis> an);
	void analysis_accounts(std::shared_ptr<InboundAnalysis> an);
	void analysis_verdicts(std::shared_ptr<InboundAnalysis> an);
	void deliver_inbound_copies(std::shared_ptr<InboundAnalysis> an, const std::string& checks,
	                            message::ReceivedInfo ri);
	void inbound_copies_written(std::shared_ptr<InboundAnalysis> an, const std::vector<std::string>& copy_rcpts,
	                            const CopiesDelivered& delivered, std::vector<DeliverError> errors);
	void queue_lmtp_retries(std::shared_ptr<InboundAnalysis> an, std::vector<OutboundRecipient> retries,
	                        std::shared_ptr<UniqueFd> message, std::vector<DeliverError> errors,
	                        std::vector<DeliverError> if_not_queued);
	void lmtp_retries_queued(std::shared_ptr<InboundAnalysis> an, std::vector<DeliverError> errors,
	                         std::vector<DeliverError> if_not_queued, const std::string& error);
	CopiesRenamed history_beside_sync(std::shared_ptr<InboundAnalysis> an);
	void await_history_records(std::shared_ptr<InboundAnalysis> an, std::vector<DeliverError> errors);
	void remove_obsolete_rejects(std::shared_ptr<InboundAnalysis> an, std::vector<DeliverError> errors);
	// Counts delivered recipients by reason; returns the distinct reasons, comma-separated.
	std::string count_inbound_deliveries(const InboundAnalysis& an, const std::vector<DeliverError>& errors) const;
	void deliver_copies(std::shared_ptr<InboundAnalysis> an);
	void deliver_localserve_copies();
	void submit_message();
	void submit_localserve(const SubmissionResult& r, const std::string& path, const message::ReceivedInfo& ri);
	void submission_prepared(const SubmissionResult& r, const std::string& path, std::time_t now, bool has_8bit,
	                         int64_t size);
	message::ReceivedInfo received_info(std::time_t now) const;
	std::string received_from_comment(const std::string& from, const std::string& reverse_name) const;
	std::string return_path_field() const;
	std::string received_field(const message::ReceivedInfo& ri) const;
	void finish_command();  // after an async command completes

	// Suspends the current command (state waiting, reading stops, the
	// waiting deadline runs) and returns the completion callback for the
	// async work it starts. The callback holds only the server and this
	// connection's handle: when it runs, the connection is looked up, and if
	// it still exists `f(conn, results...)` runs and its Outcome is applied
	// (resume), then buffered input continues. A callback invoked inside the
	// call that started its job (canned DNS answers, lookups answered
	// early) is posted to the loop instead, so a completion never runs
	// beneath a frame of its own connection (doc/design.md "One lifetime
	// rule").
	template <class F>
	auto suspend(F f);
	// suspend() for a worker job whose result hands over a file (the
	// received message, a copy made for the queue): the returned callable
	// is the job's completion. When the session is gone before it (closed,
	// timed out, shut down), `f` never runs and nothing else knows the
	// file, so it is removed (on a worker).
	template <class F>
	auto suspend_owning_file(std::string path, F f);
	// A new file name in data_dir/tmp for a message this session hands to
	// the queue (`kind`: "dsn", "lmtp-retry"), unique in the process: a
	// session may have two on their way at once. Its "data-" prefix leaves
	// one a dead daemon left behind to the start-up sweep of tmp/.
	std::string queue_transfer_path(std::string_view kind) const;
	// For async work that may also answer at once (an early lookup whose
	// answer is in, a cache, lookups that all answered while being
	// started): `start(answer)` starts it; an answer given before start
	// returns runs `next(conn, results...)` right after, in this frame,
	// with no trip through the loop; a later one resumes the connection as
	// suspend() does. `next` returns nothing; the caller does nothing with
	// the connection after this call.
	template <class... Results, class Start, class Next>
	void continue_when(Start start, Next next);
	// Runs a completion's continuation and applies the Outcome it returns
	// (a continuation that returns nothing handed the command on to work
	// that applies its own), then continues with buffered input.
	template <class Fn>
	void resume(Fn&& fn) {
		if constexpr (std::is_void_v<std::invoke_result_t<Fn&>>)
			fn();
		else
			apply(fn());
		finish_command();
	}
	// Drops the transaction's message files (the one being received and
	// the one awaiting its decision), descriptors closed first.
	void abort_data_file(FileRemoval how = FileRemoval::now);
	void remove_spool_file(UniqueFd& fd, std::string path, FileRemoval how);

	// Milters (server/milter.cpp). Each hook is one call: milter_check
	// returns true when it suspended the command, which `again` then runs a
	// second time once the milters let it through (its Outcome is applied).
	void milter_hello();
	bool milter_check(MilterStage stage, std::string argument, std::function<Outcome(Connection&)> again);
	bool milter_check_message(std::function<void(Connection&)> then);
	void milter_message_verdict(MilterVerdict v, const std::function<void(Connection&)>& then);

	// Shutdown: idle sessions get 421 at once, busy ones after their command
	// or, when timeouts_s.shutdown passes first, then (shutdown_timeout).
	void shutdown_notice();
	bool shutdown_if_idle();
	void shutdown_timeout();

	const config::Listener& listener() const;
	bool submission() const { return service != net::Service::smtp; }
	// The listener's name: the greeting, EHLO and SASL only.
	const std::string& hostname() const;
	// The global hostname: what the server writes into messages (Received
	// "by", Authentication-Results, Message-Id, DSNs), whatever the listener.
	const std::string& global_hostname() const { return cfg->hostname; }
	std::string received_id() const;
	std::string address_text(const smtp::Address&) const;

	Server& srv;
	core::ConnHandle self;
	uint64_t cid;
	std::string listener_name;
	net::Service service;
	std::shared_ptr<const config::Config> cfg;
	IpAddr remote_ip, local_ip;
	uint16_t remote_port = 0, local_port = 0;

	// The client's bytes, plain or TLS (owns the socket).
	net::Transport transport;
	const net::TlsSession* tls_session() const { return transport.tls(); }
	int wanted_io = 0;  // EV_READ/EV_WRITE the session waits for (the watcher's mask)
	core::IoWatcher io;
	core::TimerWatcher deadline;
	core::TimerWatcher slow_timer;  // slow mode: runs between two output bytes
	std::string inbuf;              // taken when bytes arrive, released when empty
	std::string outbuf;             // released when drained

	SessionState state = SessionState::command;
	bool dead = false;  // destroyed by the server after the current callback
	bool eof = false;
	bool tls = false;
	SessionFlags flags;
	bool tls_pending_start = false;            // STARTTLS answered; handshake starts once the 220 is out
	std::shared_ptr<EarlyIprev> early_iprev;   // port 25: started with the session
	bool greeted = false;                      // implicit TLS: greeting (or refusal) done after the handshake
	Admission admission = Admission::pending;  // set once, at accept

	bool ehlo = false;
	std::optional<smtp::HelloArg> hello;
	std::string username;  // authenticated account ("" = not)
	Transaction tx;
	std::unique_ptr<DataInProgress> data;
	ReceivedMessage received;                  // awaiting its decision; removed if we close
	std::function<void(Connection&)> stalled;  // runs when the stall timer fires
	std::unique_ptr<MilterSession> milters;    // from the first EHLO on a listener with milters

	// AUTH state: the mechanism exists only during an exchange.
	std::unique_ptr<sasl::Mechanism> mechanism;
	std::string auth_login;      // account being logged in
	uint32_t auth_failures = 0;  // on this connection
	AuthAttemptState auth_state;
	// With the Dovecot backend: the exchange relayed to Dovecot, its
	// mechanism, the login name the client sent (for the failed-login log
	// line), how many client messages went to Dovecot, and the user of an
	// OK whose final data awaits the client's acknowledgement.
	std::shared_ptr<DovecotAuthClient> dovecot_auth;
	std::string relay_mechanism;
	std::string relay_username_sent;
	int relay_messages = 0;
	std::optional<std::string> relay_succeeded_user;

	uint32_t ncmds = 0;  // recognised commands so far
	uint32_t tx_bad = 0, tx_good = 0;
	uint32_t transactions = 0;  // MAIL commands accepted (RFC 9422 MAILMAX)
	std::string cmd;            // command awaiting its final reply, lower case; "" when none
	double cmd_start = 0;
};

}  // namespace tern::server
