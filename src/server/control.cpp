#include "server/control.h"

#include "net/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "util/log.h"

namespace tern::server {

namespace {

// A request that does not arrive, or an answer that is not read, within
// this time ends its connection.
constexpr double client_timeout_s = 60.0;

// Whether a process answers on the socket file at `path`.
bool socket_is_live(const std::string& path) {
	int fd = net::connect_unix(path);
	if (fd < 0) return false;
	::close(fd);
	return true;
}

}  // namespace

struct ControlServer::Client {
	int fd;
	core::IoWatcher io;
	core::TimerWatcher deadline;
	std::string in;
	std::string out;
	bool request_taken = false;

	Client(struct ev_loop* loop, int fd_, std::function<void(int)> on_io, std::function<void()> on_deadline)
	    : fd(fd_), io(loop, std::move(on_io)), deadline(loop, std::move(on_deadline)) {}
	~Client() {
		io.stop();
		::close(fd);
	}
};

ControlServer::ControlServer(struct ev_loop* loop, core::WorkerPool& workers, std::string path)
    : loop_(loop), workers_(workers), path_(std::move(path)), listen_watcher_(loop, [this](int) { on_accept(); }) {
	if (!net::unix_address(path_))
		throw std::runtime_error("control socket path too long (max " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
		                         " bytes): " + path_);
	if (socket_is_live(path_))
		throw std::runtime_error("another ternd answers on " + path_ + " (same data_dir?)");
	// Only the daemon's user (and root) may connect; a file left behind by a
	// ternd that was killed is replaced.
	fd_ = net::listen_unix(path_, 0600, 16);
	if (fd_ < 0) {
		int err = -fd_;
		fd_ = -1;
		throw std::runtime_error("control socket " + path_ + ": " + std::strerror(err));
	}
}

ControlServer::~ControlServer() {
	listen_watcher_.stop();
	std::vector<core::ConnHandle> all;
	clients_.for_each([&](core::ConnHandle h, Client&) { all.push_back(h); });
	for (auto h : all) clients_.erase(h);
	if (fd_ >= 0) {
		::close(fd_);
		::unlink(path_.c_str());
	}
}

void ControlServer::add(const std::string& command, ControlHandler handler) {
	handlers_[command] = std::move(handler);
}

void ControlServer::start() {
	listen_watcher_.set(fd_, EV_READ);
}

void ControlServer::on_accept() {
	for (;;) {
		int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
				log::error("control socket accept", {{"error", std::strerror(errno)}});
			return;
		}
		auto h = std::make_shared<core::ConnHandle>();
		auto client = std::make_unique<Client>(
		    loop_, fd,
		    [this, h](int revents) {
			    if (revents & EV_READ) on_readable(*h);
			    else if (revents & EV_WRITE) on_writable(*h);
		    },
		    [this, h] { drop(*h); });
		Client* c = client.get();
		*h = clients_.insert(std::move(client));
		c->io.set(fd, EV_READ);
		c->deadline.start(client_timeout_s);
	}
}

void ControlServer::on_readable(core::ConnHandle h) {
	Client* c = clients_.get(h);
	if (!c) return;
	char buf[4096];
	for (;;) {
		ssize_t n = ::read(c->fd, buf, sizeof buf);
		if (n > 0) {
			c->in.append(buf, static_cast<size_t>(n));
			// Only the new bytes can hold the LF: a request of megabytes (the
			// words of a message) must not be rescanned at every read.
			size_t lf = c->in.find('\n', c->in.size() - static_cast<size_t>(n));
			if (lf != std::string::npos) {
				// One request per connection: stop reading, answer, close.
				c->io.set(c->fd, 0);
				c->request_taken = true;
				dispatch(h, c->in.substr(0, lf));
				return;
			}
			if (c->in.size() > control::max_request_line + 2) {
				answer(h, {2, "", "ternd: control request too long\n"});
				return;
			}
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
		if (n < 0 && errno == EINTR) continue;
		// EOF or an error before a whole request: the sender is gone (a
		// killed ternctl); nothing was done for it.
		drop(h);
		return;
	}
}

void ControlServer::dispatch(core::ConnHandle h, const std::string& line) {
	auto words = control::parse_request(line);
	if (!words) {
		answer(h, {2, "", "ternd: malformed control request\n"});
		return;
	}
	std::string command = (*words)[0];
	std::vector<std::string> args(words->begin() + 1, words->end());
	auto it = handlers_.find(command);
	if (it == handlers_.end()) {
		answer(h, {2, "", "ternd: unknown control command: " + command + "\n"});
		return;
	}
	// The first argument names the account or the subcommand; later ones
	// may be secrets and are never logged.
	log::info("control request", {{"command", command}, {"arg", args.empty() ? std::string("-") : args[0]}});
	ControlJob job;
	try {
		job = it->second(args);
	} catch (const std::exception& e) {
		answer(h, {1, "", std::string("error: ") + e.what() + "\n"});
		return;
	}
	auto outcome = std::make_shared<ControlOutcome>();
	workers_.submit(
	    [job = std::move(job), outcome] {
		    try {
			    *outcome = job();
		    } catch (const std::exception& e) {
			    outcome->answer = {1, "", std::string("error: ") + e.what() + "\n"};
		    }
	    },
	    [this, h, outcome] {
		    // The work is done whether or not ternctl still waits for it.
		    answer(h, outcome->answer);
		    if (outcome->then_on_loop) outcome->then_on_loop();
	    });
}

void ControlServer::answer(core::ConnHandle h, const control::Answer& a) {
	Client* c = clients_.get(h);
	if (!c) return;
	c->out = control::format_answer(a);
	c->deadline.start(client_timeout_s);
	on_writable(h);
}

void ControlServer::on_writable(core::ConnHandle h) {
	Client* c = clients_.get(h);
	if (!c) return;
	while (!c->out.empty()) {
		ssize_t n = ::send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
		if (n > 0) {
			c->out.erase(0, static_cast<size_t>(n));
			continue;
		}
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->io.set(c->fd, EV_WRITE);
			return;
		}
		break;   // the reader went away
	}
	drop(h);
}

void ControlServer::drop(core::ConnHandle h) {
	clients_.erase(h);
}

}  // namespace tern::server
