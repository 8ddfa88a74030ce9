// The session-dialogue tier (doc/design.md "Tests without sockets"): one
// real server::Connection, with a real Server and config, driven through a
// scripted byte stream instead of a socket. No listener is bound, no daemon
// runs; DNS comes from a canned or offline resolver. Client bytes in, the
// exact reply bytes out, with the loop's timers and worker pool real.
#pragma once
#include <ev.h>

#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "mailauth/resolver.h"
#include "net/byte_stream.h"
#include "net/listener.h"
#include "net/tls.h"
#include "server/server.h"
#include "store/db.h"

namespace tern::session_test {

// Runs `loop` until `pred` holds or `seconds` pass: `step` moves the
// scripted wire by one step (false when nothing moved), and the loop runs
// once whenever the wire is still, woken now and then by a short tick so
// the wire is looked at even when no timer or completion is due.
bool run_loop_until(struct ev_loop* loop, const std::function<bool()>& pred, const std::function<bool()>& step,
                    double seconds);

// The wire between the scripted client and the session.
struct Wire {
	std::string to_server;  // sent by the client, not yet read by the session
	bool client_closed = false;
	std::string from_server;  // written by the session, not yet taken by the client
	// Bytes the session may still write before it gets EAGAIN (the peer's
	// window), and the most one write call takes (short writes).
	size_t write_room = std::numeric_limits<size_t>::max();
	size_t max_write = std::numeric_limits<size_t>::max();
	size_t max_read = std::numeric_limits<size_t>::max();
	size_t writes_refused = 0;  // write calls answered EAGAIN
	bool reset = false;         // the peer reset the connection: reads and writes fail
};

// The session's end of the wire: what it reads is what the client sent.
class ScriptedStream : public net::ByteStream {
public:
	explicit ScriptedStream(std::shared_ptr<Wire> wire) : wire_(std::move(wire)) {}
	net::IoStatus read(char* buf, size_t cap, size_t& n) override;
	net::IoStatus write(const char* buf, size_t len, size_t& n) override;
	std::string last_error() const override { return "scripted stream: " + error_; }

private:
	std::shared_ptr<Wire> wire_;
	std::string error_;
};

// Canned answers delivered from the loop after `delay` seconds (0: at the
// loop's next turn), never inside the query call; cancel_owner drops the
// answers still due, as the real resolver does.
class DelayedResolver : public mailauth::Resolver {
public:
	explicit DelayedResolver(struct ev_loop* loop) : loop_(loop) {}
	~DelayedResolver() override;
	mailauth::CannedResolver& canned() { return canned_; }
	double delay = 0;
	int answered = 0;  // callbacks run
	void query(uint64_t owner, const std::string& name, mailauth::RrType type, Callback cb) override;
	void cancel_owner(uint64_t owner) override;

private:
	struct Pending;
	static void fire(struct ev_loop* loop, ev_timer* w, int revents);
	struct ev_loop* loop_;
	mailauth::CannedResolver canned_;
	std::vector<Pending*> pending_;
};

struct HarnessOptions {
	// A JSON merge patch (RFC 7386) on the default config.
	std::string config_patch;
	net::Service service = net::Service::smtp;
	bool localserve = false;  // the built-in localserve config, offline resolver
	std::string remote_ip = "192.0.2.10";
	bool tls = false;     // a self-signed certificate for STARTTLS / port 465
	bool connect = true;  // open the session in the constructor
};

class SessionHarness {
public:
	explicit SessionHarness(HarnessOptions options = {});
	~SessionHarness();
	SessionHarness(const SessionHarness&) = delete;
	SessionHarness& operator=(const SessionHarness&) = delete;

	void connect();
	// Ends the current session (if still open) and opens a new one on a
	// fresh wire, with the same server: for runs of many sessions.
	void reconnect(net::Service service);
	// Client side.
	void send(std::string_view bytes);
	void close_client();
	// Starts the client's TLS handshake over the wire (after "220 2.0.0"):
	// from now send() encrypts and replies are decrypted.
	void start_client_tls();
	bool client_tls_done() const;

	// Runs the loop (timers, worker completions, the session's wanted I/O)
	// until pred() holds or `seconds` of real time passed; returns pred().
	bool run_until(const std::function<bool()>& pred, double seconds = 5);
	// Waits for n complete replies (final lines) and returns their bytes,
	// removing them; what arrived so far when they do not come in time.
	std::string replies(size_t n = 1, double seconds = 5);
	// Sends `line` CRLF and returns the next n replies.
	std::string exchange(std::string_view line, size_t n = 1, double seconds = 5);
	// Reply bytes received and not yet taken by replies().
	const std::string& received() const { return received_; }
	void forget_received() { received_.clear(); }

	bool session_open();
	// The session's wanted EV_READ/EV_WRITE mask, -1 when it is gone.
	int wanted_io();
	// Runs f on the live session; false when it is gone.
	bool with_session(const std::function<void(server::Connection&)>& f);

	Wire& wire() { return *wire_; }
	server::Server& server() { return *server_; }
	store::Env& env() { return *env_; }
	// Port 25 and submission sessions: the fake DNS (localserve uses the offline resolver).
	DelayedResolver& dns() { return *dns_; }
	const config::Config& config() const { return *cfg_; }
	struct ev_loop* loop() const {
		return loop_;
	}
	const std::string& data_dir() const { return data_dir_; }
	// The message files in an account's Maildir new/ (full paths).
	std::vector<std::string> maildir_files(const std::string& account) const;

private:
	bool pump();
	bool pump_client();
	void build_config(const HarnessOptions& o);

	HarnessOptions options_;
	std::string data_dir_;
	std::shared_ptr<const config::Config> cfg_;
	struct ev_loop* loop_ = nullptr;
	std::unique_ptr<store::Env> env_;
	DelayedResolver* dns_ = nullptr;
	std::unique_ptr<server::Server> server_;
	std::shared_ptr<Wire> wire_ = std::make_shared<Wire>();
	core::ConnHandle handle_{};
	bool connected_ = false;
	std::string received_;
	// Client TLS over the wire.
	class ClientEnd;
	std::unique_ptr<ClientEnd> client_end_;
	std::shared_ptr<const net::TlsClientContext> client_ctx_;
	std::unique_ptr<net::TlsSession> client_tls_;
	std::string client_pending_;  // plaintext waiting for the client's TLS write
};

// Counts final reply lines ("250 ..."), i.e. complete replies, in bytes.
size_t count_replies(std::string_view bytes);

}  // namespace tern::session_test
