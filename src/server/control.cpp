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
bool socket_is_live(const std::string& path) { return net::connect_unix(path).valid(); }

}  // namespace

struct ControlServer::Client : LocalClient {
	using LocalClient::LocalClient;
	std::string in;
	std::string out;
	bool request_taken = false;
};

ControlServer::ControlServer(struct ev_loop* loop, core::WorkerPool& workers, std::string path)
	: workers_(workers), path_(std::move(path)),
	  clients_(loop, "control socket", SIZE_MAX, client_timeout_s,
                   {[](UniqueFd fd) { return std::make_unique<Client>(std::move(fd)); },
                    [this](Client& c, int revents) {
			    if (revents & EV_READ)
				    on_readable(c);
			    else if (revents & EV_WRITE)
				    on_writable(c);
		    },
                    [](Client& c) { c.dead = true; }, ""}) {
	if (!net::unix_address(path_))
		throw std::runtime_error("control socket path too long (max " +
		                         std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes): " + path_);
	if (socket_is_live(path_)) throw std::runtime_error("another ternd answers on " + path_ + " (same data_dir?)");
	// Only the daemon's user (and root) may connect; a file left behind by a
	// ternd that was killed is replaced.
	UniqueFd fd = net::listen_unix(path_, 0600, 16);
	if (!fd) throw std::runtime_error("control socket " + path_ + ": " + std::strerror(errno));
	clients_.listen(std::move(fd), path_);
}

// The clients and the socket (with its file) go with clients_.
ControlServer::~ControlServer() = default;

void ControlServer::add(const std::string& command, ControlHandler handler) { handlers_[command] = std::move(handler); }

void ControlServer::start() { clients_.start(); }

void ControlServer::on_readable(Client& c) {
	char buf[4096];
	for (;;) {
		ssize_t n = ::read(c.fd.get(), buf, sizeof buf);
		if (n > 0) {
			c.in.append(buf, static_cast<size_t>(n));
			// Only the new bytes can hold the LF: a request of megabytes (the
			// words of a message) must not be rescanned at every read.
			size_t lf = c.in.find('\n', c.in.size() - static_cast<size_t>(n));
			if (lf != std::string::npos) {
				// One request per connection: stop reading, answer, close.
				c.io->set(c.fd.get(), 0);
				c.request_taken = true;
				dispatch(c, c.in.substr(0, lf));
				return;
			}
			if (c.in.size() > control::max_request_line + 2) {
				answer(c, {2, "", "ternd: control request too long\n"});
				return;
			}
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
		if (n < 0 && errno == EINTR) continue;
		// EOF or an error before a whole request: the sender is gone (a
		// killed ternctl); nothing was done for it.
		c.dead = true;
		return;
	}
}

void ControlServer::dispatch(Client& c, const std::string& line) {
	auto words = control::parse_request(line);
	if (!words) {
		answer(c, {2, "", "ternd: malformed control request\n"});
		return;
	}
	std::string command = (*words)[0];
	std::vector<std::string> args(words->begin() + 1, words->end());
	auto it = handlers_.find(command);
	if (it == handlers_.end()) {
		answer(c, {2, "", "ternd: unknown control command: " + command + "\n"});
		return;
	}
	// The first argument names the account or the subcommand; later ones
	// may be secrets and are never logged.
	log::info("control request", {{"command", command}, {"arg", args.empty() ? std::string("-") : args[0]}});
	ControlJob job;
	try {
		job = it->second(args);
	} catch (const std::exception& e) {
		answer(c, {1, "", std::string("error: ") + e.what() + "\n"});
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
	    [this, h = c.self, outcome] {
		    // The work is done whether or not ternctl still waits for it.
		    clients_.with_client(h, [&](Client& c) { answer(c, outcome->answer); });
		    if (outcome->then_on_loop) outcome->then_on_loop();
	    });
}

void ControlServer::answer(Client& c, const control::Answer& a) {
	c.out = control::format_answer(a);
	clients_.arm_deadline(c);
	on_writable(c);
}

void ControlServer::on_writable(Client& c) {
	while (!c.out.empty()) {
		ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
		if (n > 0) {
			c.out.erase(0, static_cast<size_t>(n));
			continue;
		}
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c.io->set(c.fd.get(), EV_WRITE);
			return;
		}
		break;  // the reader went away
	}
	c.dead = true;
}

}  // namespace tern::server
