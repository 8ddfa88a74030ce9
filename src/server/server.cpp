#include "server/server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "core/stats.h"
#include "util/log.h"

namespace tern::server {

Server::Server(struct ev_loop* loop, std::shared_ptr<const config::Config> cfg, std::vector<net::ListenSocket> sockets,
               std::string recvid_key, std::unique_ptr<mailauth::Resolver> resolver)
	: loop_(loop), cfg_(std::move(cfg)), workers_(loop), resolver_(std::move(resolver)), recvid_(recvid_key),
	  scratch_(new char[scratch_size]), accept_resume_(loop,
                                                           [this] {
								   for (auto& a : acceptors_)
									   a->watcher->set(a->sock.fd.get(), EV_READ);
							   }),
	  shutdown_timer_(loop,
                          [this] {
				  log::info("shutdown timeout, closing remaining connections");
				  std::vector<core::ConnHandle> all;
				  conns_.for_each([&](core::ConnHandle h, Connection&) { all.push_back(h); });
				  for (auto h : all) with_conn(h, [](Connection& c) { c.shutdown_timeout(); });
			  }),
	  posted_timer_(loop, [this] { run_posted(); }) {
	// Connection ids start at a random point so ids (and received-ids) of
	// different runs do not repeat.
	std::random_device rd;
	next_cid_ = (static_cast<uint64_t>(rd()) << 20) | 1;
	for (auto& s : sockets) {
		auto a = std::make_unique<Acceptor>();
		a->sock = std::move(s);
		Acceptor* raw = a.get();
		a->watcher = std::make_unique<core::IoWatcher>(loop_, [this, raw](int) { on_accept(*raw); });
		acceptors_.push_back(std::move(a));
	}
	build_limiters();
}

Server::~Server() {
	std::vector<core::ConnHandle> all;
	conns_.for_each([&](core::ConnHandle h, Connection&) { all.push_back(h); });
	for (auto h : all) destroy(h);
	// The watchers stop before their sockets close (Acceptor's member order).
	acceptors_.clear();
}

namespace {

// Failed logins: per minute and per day (doc/behaviour.md §10).
std::vector<Limiter::Window> auth_failure_windows(const config::Config& cfg) {
	return {limiter_window(60, cfg.limits.auth_failures_per_min),
	        limiter_window(86400, cfg.limits.auth_failures_per_day)};
}

}  // namespace

void Server::build_limiters() {
	// doc/behaviour.md §1: connection rate per minute, open connections for
	// all time; doc/behaviour.md D16: both configurable.
	conn_rate_ = Limiter({limiter_window(60, cfg_->limits.connection_rate_per_min)});
	// The concurrency limiter keeps its counts across reloads only when the
	// limits are unchanged; a reload with new limits starts counting afresh
	// for new connections, and old ones release into the new one harmlessly
	// (negative adds never fail and counts never go below zero).
	conn_count_ = Limiter({limiter_window(0, cfg_->limits.connections)});
	auth_failures_ = Limiter(auth_failure_windows(*cfg_));
}

void Server::start() {
	disk_space_.start();
	for (auto& a : acceptors_) {
		a->watcher->set(a->sock.fd.get(), EV_READ);
		log::info("listening",
		          {{"listener", a->sock.listener},
		           {"service", net::service_name(a->sock.service)},
		           {"address", a->sock.address}});
	}
	refresh_dovecot_mechanisms();
}

void Server::reload(std::shared_ptr<const config::Config> cfg) {
	bool limits_changed = cfg->limits.connections != cfg_->limits.connections ||
	    cfg->limits.connection_rate_per_min != cfg_->limits.connection_rate_per_min;
	cfg_ = std::move(cfg);
	if (limits_changed) {
		conn_rate_ = Limiter({limiter_window(60, cfg_->limits.connection_rate_per_min)});
		conn_count_ = Limiter({limiter_window(0, cfg_->limits.connections)});
		// Live connections hold no slot in the new limiter.
		conns_.for_each([](core::ConnHandle, Connection& c) { c.flags.counted_connection = false; });
	}
	// Failed logins keep their counts: a lowered limit applies at once to
	// the failures already seen, as a raised one lets them back in.
	auth_failures_.set_windows(auth_failure_windows(*cfg_));
	refresh_dovecot_mechanisms();
}

void Server::pause_accepting(double seconds) {
	for (auto& a : acceptors_) a->watcher->stop();
	accept_resume_.start(seconds);
}

void Server::on_accept(Acceptor& a) {
	// Accept a bounded batch per wake-up so one busy listener cannot starve
	// the rest of the loop.
	for (int i = 0; i < 64; ++i) {
		net::SocketAddress peer;
		UniqueFd fd = net::accept_connection(a.sock.fd.get(), peer);
		if (!fd) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				// Out of descriptors: stop accepting for a moment instead of
				// spinning on a listener that stays readable.
				const char* why = std::strerror(errno);
				log::event(accept_pauses_.occurred(ev_now(loop_)), 0, "accept failed, pausing",
				           {{"error", why}});
				pause_accepting(0.1);
				return;
			}
			log::error("accept failed", {{"error", std::strerror(errno)}});
			return;
		}
		if (!cfg_->listeners.count(a.sock.listener)) {
			// A reload removed this listener; its sockets stay bound until
			// restart (listener changes take effect then), serving nobody.
			continue;
		}
		// A specific listener's address is every connection's local address;
		// only a wildcard listener's connections ask the socket.
		std::optional<net::SocketAddress> local = a.sock.bound;
		if (!local) local = net::local_address(fd.get());
		open_connection(std::make_unique<net::FdStream>(std::move(fd)), a.sock, [&](Connection& c) {
			c.remote_ip = peer.ip;
			c.remote_port = peer.port;
			if (local) {
				c.local_ip = local->ip;
				c.local_port = local->port;
			}
		});
	}
}

core::ConnHandle Server::open_connection(std::unique_ptr<net::ByteStream> stream, const net::ListenSocket& ls,
                                         const std::function<void(Connection&)>& before_start) {
	uint64_t cid = next_cid_++;
	auto conn = std::make_unique<Connection>(*this, core::ConnHandle{}, cid, std::move(stream), ls, cfg_);
	Connection* raw = conn.get();
	core::ConnHandle h = conns_.insert(std::move(conn));
	raw->self = h;
	if (before_start) before_start(*raw);
	with_conn(h, [](Connection& c) { c.start(); });
	return h;
}

void Server::internal_error(Connection& c, const char* what) {
	log::event(log::Level::error, c.cid, "internal error, closing connection", {{"error", what}});
	core::stats().count_error("internal");
	c.close_now("internal error");
}

void Server::destroy(core::ConnHandle h) {
	conns_.erase(h);
	if (shutting_down_) maybe_finish_shutdown();
}

void Server::post(std::function<void()> f) {
	posted_.push_back(std::move(f));
	if (!posted_timer_.active()) posted_timer_.start(0.0);
}

void Server::run_posted() {
	// What these calls post runs on the next iteration, not in this one.
	std::vector<std::function<void()>> batch;
	batch.swap(posted_);
	for (auto& f : batch) f();
}

void Server::begin_shutdown() {
	if (shutting_down_) return;
	shutting_down_ = true;
	log::info("shutting down", {{"connections", std::to_string(conns_.size())}});
	for (auto& a : acceptors_) {
		a->watcher->stop();
		a->sock.fd.reset();
	}
	accept_resume_.stop();
	std::vector<core::ConnHandle> all;
	conns_.for_each([&](core::ConnHandle h, Connection&) { all.push_back(h); });
	for (auto h : all) with_conn(h, [](Connection& c) { c.shutdown_notice(); });
	shutdown_timer_.start(static_cast<double>(cfg_->timeouts_s.shutdown));
	maybe_finish_shutdown();
}

void Server::maybe_finish_shutdown() {
	if (conns_.size() != 0) return;
	shutdown_timer_.stop();
	// Outstanding worker jobs (deliveries whose clients vanished) still
	// complete: the pool keeps the loop alive until they are done.
	ev_break(loop_, EVBREAK_ONE);
}

}  // namespace tern::server
