// The server: owns the loop-side state — connection table, listeners'
// accept watchers, config snapshot, limiters, worker pool — and implements
// reload and graceful shutdown (doc/behaviour.md "Logs, signals, metrics").
#pragma once
#include <ev.h>

#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "mailauth/resolver.h"
#include "core/conn_table.h"
#include "core/disk_space.h"
#include "core/watchers.h"
#include "core/maildir_writer.h"
#include "core/worker_pool.h"
#include "net/listener.h"
#include "net/tls.h"
#include "server/dnsbl_health_cache.h"
#include "server/limiter.h"
#include "server/outbound.h"
#include "store/db.h"
#include "server/session.h"
#include "util/recvid.h"

namespace tern::server {

class Server {
public:
	Server(struct ev_loop* loop, std::shared_ptr<const config::Config> cfg, std::vector<net::ListenSocket> sockets,
	       std::string recvid_key, std::unique_ptr<mailauth::Resolver> resolver);
	~Server();

	// Starts accepting. The loop then runs until shutdown completes.
	void start();
	// SIGHUP: new connections use the new snapshot; limits and log level follow.
	void reload(std::shared_ptr<const config::Config> cfg);
	// SIGTERM/SIGINT: stop accepting, 421 to idle sessions now, to busy ones
	// after their command; force-close after timeouts_s.shutdown.
	void begin_shutdown();
	bool shutting_down() const { return shutting_down_; }

	// Runs f on the connection if the handle is still live, then destroys the
	// connection if f marked it dead. The only way into a connection from a
	// completion or watcher callback. Calls may nest (a watcher callback that
	// reaches another path into the same connection); the connection is
	// destroyed only when the outermost call returns, so no member function
	// of it is ever still running when it goes (doc/design.md "One lifetime
	// rule").
	template <class F>
	void with_conn(core::ConnHandle h, F&& f) {
		conns_.visit(h, [&](Connection& c) {
			try {
				f(c);
			} catch (const std::exception& e) {
				// The second error boundary (doc/design.md "The connection"): an
				// unexpected failure ends this connection, never the daemon.
				internal_error(c, e.what());
			} catch (...) {
				internal_error(c, "unknown exception");
			}
			if (c.dead) destroy(h);
		});
	}
	// Whether a call into this connection is on the stack: a completion
	// arriving now runs inside the call that started its job.
	bool in_connection(core::ConnHandle h) const { return conns_.visiting(h); }
	// Runs `f` from the loop on its next iteration, never inside the
	// current call (completions that arrive synchronously go this way).
	void post(std::function<void()> f);
	void internal_error(Connection& c, const char* what);
	// A new session on `stream` (an accepted socket, or a script in the
	// session tests); `before_start` runs on it before its first step (the
	// tests set the peer's address there). Returns its handle.
	core::ConnHandle open_connection(std::unique_ptr<net::ByteStream> stream, const net::ListenSocket& ls,
	                                 const std::function<void(Connection&)>& before_start = {});
	void destroy(core::ConnHandle h);

	struct ev_loop* loop() const {
		return loop_;
	}
	const std::shared_ptr<const config::Config>& config() const { return cfg_; }
	core::WorkerPool& workers() { return workers_; }
	core::MaildirWriter& maildir_writer() { return maildir_writer_; }
	core::SpoolPool& spool() { return spool_; }
	// Free space on data_dir's file system (refuses message data when low).
	core::DiskSpaceMonitor& disk_space() { return disk_space_; }
	mailauth::Resolver& resolver() { return *resolver_; }
	DnsblHealthCache& dnsbl_health() { return dnsbl_health_; }
	// The certificate in force (nullptr without one); sessions keep the
	// context they started with across a reload.
	std::shared_ptr<const net::TlsServerContext> tls_context() const { return tls_; }
	void set_tls_context(std::shared_ptr<const net::TlsServerContext> ctx) { tls_ = std::move(ctx); }
	const ReceivedIdGenerator& recvid() const { return recvid_; }
	Limiter& connection_limiter() { return conn_count_; }
	Limiter& rate_limiter() { return conn_rate_; }
	Limiter& auth_failure_limiter() { return auth_failures_; }
	// The database; nullptr when it could not be opened (logins then fail).
	store::Env* env() const { return env_; }
	// The outbound queue (nullptr until ternd wires it in).
	OutboundQueue* outbound() const { return outbound_; }
	void set_outbound(OutboundQueue* q) { outbound_ = q; }
	void set_env(store::Env* env) { env_ = env; }
	// Shared 64 KiB read buffer of the loop thread (connections copy only
	// what they must keep).
	char* scratch() { return scratch_.get(); }
	static constexpr size_t scratch_size = 64 * 1024;
	size_t open_connections() const { return conns_.size(); }
	// With the Dovecot auth backend (server/auth_dovecot.cpp): the EHLO AUTH
	// value from Dovecot's last handshake, "PLAIN" until one was seen; a
	// value older than a minute is refreshed in the background.
	std::string dovecot_advertised();
	void note_dovecot_mechanisms(const std::vector<std::string>& offered);
	void refresh_dovecot_mechanisms();
	// Whether the first probe since start is still out; then `cb` runs
	// once it has its answer (or failed).
	bool dovecot_mechanisms_pending() const { return dovecot_probe_ && dovecot_seen_at_ == 0; }
	void after_dovecot_probe(std::function<void()> cb) { dovecot_waiters_.push_back(std::move(cb)); }

private:
	struct Acceptor {
		net::ListenSocket sock;
		std::unique_ptr<core::IoWatcher> watcher;
	};
	void on_accept(Acceptor& a);
	void pause_accepting(double seconds);
	void maybe_finish_shutdown();
	void build_limiters();

	struct ev_loop* loop_;
	std::shared_ptr<const config::Config> cfg_;
	std::vector<std::unique_ptr<Acceptor>> acceptors_;
	core::ConnTable<Connection> conns_;
	core::WorkerPool workers_;
	core::SpoolPool spool_{cfg_->data_dir + "/tmp", &workers_};
	core::MaildirWriter maildir_writer_{loop_, &spool_};
	core::DiskSpaceMonitor disk_space_{loop_, workers_, cfg_->data_dir};
	std::unique_ptr<mailauth::Resolver> resolver_;
	DnsblHealthCache dnsbl_health_{*resolver_};
	std::shared_ptr<const net::TlsServerContext> tls_;
	ReceivedIdGenerator recvid_;
	Limiter conn_rate_{{}};
	Limiter conn_count_{{}};
	Limiter auth_failures_{{}};
	store::Env* env_ = nullptr;
	OutboundQueue* outbound_ = nullptr;
	std::unique_ptr<char[]> scratch_;
	core::TimerWatcher accept_resume_;
	// Out of descriptors: one error line a minute, the pauses between at
	// debug level, so a listener that stays out of descriptors does not
	// fill the log ten lines a second.
	log::RepeatedEvent accept_pauses_{60};
	core::TimerWatcher shutdown_timer_;
	// Work posted by post(): a zero-delay timer drains it on the next
	// loop iteration.
	std::vector<std::function<void()>> posted_;
	core::TimerWatcher posted_timer_;
	void run_posted();
	uint64_t next_cid_;
	bool shutting_down_ = false;
	std::string dovecot_advertised_;
	double dovecot_seen_at_ = 0;                        // ev_now() of the last handshake
	std::shared_ptr<DovecotAuthClient> dovecot_probe_;  // in flight
	std::vector<std::function<void()>> dovecot_waiters_;
};

}  // namespace tern::server
