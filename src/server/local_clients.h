// What ternd's small side listeners share (the control socket,
// sendmail.sock and the metrics page): a listening socket (a unix socket's
// file goes with it), the accept loop, clients in a ConnTable, each with
// its I/O watcher and its deadline, and with_client, the one way back into
// a client from an event or a completion (doc/design.md "one lifetime
// rule"). The owner says what a client is and what its events do; this
// class does the bookkeeping.
#pragma once
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/conn_table.h"
#include "core/watchers.h"
#include "net/unix_socket.h"
#include "util/log.h"
#include "util/unique_fd.h"

namespace tern::server {

// The part of a client the table manages; owners derive their client
// from it.
struct LocalClient {
	explicit LocalClient(UniqueFd socket) : fd(std::move(socket)) {}
	virtual ~LocalClient() = default;
	UniqueFd fd;  // first: closed after the watchers below stopped
	core::ConnHandle self;
	std::unique_ptr<core::IoWatcher> io;
	std::unique_ptr<core::TimerWatcher> deadline;
	bool dead = false;  // set by a handler: the client goes when the handler returns
};

template <class Client>
class LocalClients {
public:
	struct Hooks {
		// A new connection: the client, or nullptr to refuse it (closed).
		std::function<std::unique_ptr<Client>(UniqueFd fd)> make;
		std::function<void(Client&, int revents)> on_io;
		std::function<void(Client&)> on_deadline;
		// Sent (best effort) to a connection over max_clients before it
		// is closed, telling the peer why; "" sends nothing.
		std::string over_limit_reply;
	};

	// `what` names the socket in log lines; at most `max_clients` at once,
	// later ones are closed at accept.
	LocalClients(struct ev_loop* loop, std::string what, size_t max_clients, double deadline_s, Hooks hooks)
		: loop_(loop), what_(std::move(what)), max_clients_(max_clients), deadline_s_(deadline_s),
		  hooks_(std::move(hooks)), resume_(loop, [this] { start(); }) {}
	~LocalClients() {
		stop();
		for (auto h : handles()) clients_.erase(h);
	}
	LocalClients(const LocalClients&) = delete;
	LocalClients& operator=(const LocalClients&) = delete;

	// Takes over a listening socket bound at `path` (a unix socket's; ""
	// for a TCP one); the file is removed when the socket is closed.
	void listen(UniqueFd fd, std::string path) {
		listen_fd_ = std::move(fd);
		socket_file_ = TempFile(std::move(path));
	}
	bool listening() const { return listen_fd_.valid(); }
	const std::string& path() const { return socket_file_.path(); }

	void start() {
		if (!listen_fd_) return;
		accept_watcher_ = std::make_unique<core::IoWatcher>(loop_, [this](int) { on_accept(); });
		accept_watcher_->set(listen_fd_.get(), EV_READ);
	}
	// Stops accepting, closes the socket and removes its file; clients in
	// progress finish.
	void stop() {
		resume_.stop();
		accept_watcher_.reset();
		listen_fd_.reset();
		socket_file_.remove();
	}

	// The client's deadline from now on.
	void arm_deadline(Client& c) { c.deadline->start(deadline_s_); }

	// How many clients `matches` (called with each client) holds for.
	template <class Pred>
	size_t count_if(Pred&& matches) {
		size_t n = 0;
		clients_.for_each([&](core::ConnHandle, Client& c) { n += matches(c) ? 1 : 0; });
		return n;
	}

	template <class F>
	void with_client(core::ConnHandle h, F&& f) {
		Client* c = clients_.get(h);
		if (!c) return;
		try {
			f(*c);
		} catch (const std::exception& e) {
			log::error(what_ + ": internal error", {{"error", e.what()}});
			c->dead = true;
		}
		if (c->dead) clients_.erase(h);
	}

	// Runs `f` on every client, as with_client does (a client `f` marks
	// dead goes).
	template <class F>
	void for_each_client(F&& f) {
		for (auto h : handles()) with_client(h, f);
	}

	size_t size() const { return clients_.size(); }

private:
	// The clients' handles, taken before any of them goes.
	std::vector<core::ConnHandle> handles() {
		std::vector<core::ConnHandle> all;
		clients_.for_each([&](core::ConnHandle h, Client&) { all.push_back(h); });
		return all;
	}

	// Level-triggered: a burst larger than one round is taken in the next.
	static constexpr int accepts_per_round = 64;
	// Out of descriptors, accepting pauses this long instead of spinning on
	// a listener that stays readable.
	static constexpr double accept_pause_s = 1.0;

	void on_accept() {
		for (int i = 0; i < accepts_per_round && listen_fd_; ++i) {
			UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
			if (!fd) {
				if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
					const char* why = std::strerror(errno);
					log::event(accept_pauses_.occurred(ev_now(loop_)), 0,
					           what_ + ": accept failed, pausing", {{"error", why}});
					accept_watcher_->stop();
					resume_.start(accept_pause_s);
				} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
				           errno != ECONNABORTED) {
					log::error(what_ + ": accept failed", {{"error", std::strerror(errno)}});
				}
				return;
			}
			if (clients_.size() >= max_clients_) {
				log::error(what_ + ": too many clients, connection closed",
				           {{"max", std::to_string(max_clients_)}});
				if (!hooks_.over_limit_reply.empty())
					net::send_without_waiting(fd.get(), hooks_.over_limit_reply);
				continue;
			}
			std::unique_ptr<Client> client = hooks_.make(std::move(fd));
			if (client) adopt(std::move(client));
		}
	}

	void adopt(std::unique_ptr<Client> client) {
		const int fd = client->fd.get();
		core::ConnHandle h = clients_.insert(std::move(client));
		Client* c = clients_.get(h);
		c->self = h;
		c->io = std::make_unique<core::IoWatcher>(
		    loop_, [this, h](int revents) { with_client(h, [&](Client& c) { hooks_.on_io(c, revents); }); });
		c->deadline = std::make_unique<core::TimerWatcher>(
		    loop_, [this, h] { with_client(h, [&](Client& c) { hooks_.on_deadline(c); }); });
		c->io->set(fd, EV_READ);
		arm_deadline(*c);
	}

	struct ev_loop* loop_;
	std::string what_;
	size_t max_clients_;
	double deadline_s_;
	Hooks hooks_;
	core::TimerWatcher resume_;  // after an accept_pause_s
	UniqueFd listen_fd_;
	TempFile socket_file_;
	std::unique_ptr<core::IoWatcher> accept_watcher_;
	// One error line a minute while out of descriptors (log::RepeatedEvent).
	log::RepeatedEvent accept_pauses_{60};
	core::ConnTable<Client> clients_;
};

}  // namespace tern::server
