#include "metrics/http.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include "net/listener.h"

namespace tern::metrics {

namespace {

std::string status_response(int code, std::string_view reason, std::string_view extra_headers, bool head_only,
                            const std::string& body, std::string_view content_type) {
	std::string out = "HTTP/1.1 " + std::to_string(code) + " " + std::string(reason) + "\r\n";
	out += "Content-Type: " + std::string(content_type) + "\r\n";
	out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
	out += extra_headers;
	out += "Connection: close\r\n\r\n";
	if (!head_only) out += body;
	return out;
}

std::string plain_error(int code, std::string_view reason, std::string_view extra_headers = {}) {
	return status_response(code, reason, extra_headers, false, std::string(reason) + "\n",
	                       "text/plain; charset=utf-8");
}

}  // namespace

std::string http_response(std::string_view head, const std::function<std::string()>& body) {
	// RFC 9112 3: request-line = method SP request-target SP HTTP-version.
	size_t eol = head.find('\n');
	std::string_view line = head.substr(0, eol);
	if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
	size_t sp1 = line.find(' ');
	size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
	if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
	    line.find(' ', sp2 + 1) != std::string_view::npos)
		return plain_error(400, "Bad Request");
	std::string_view method = line.substr(0, sp1);
	std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
	std::string_view version = line.substr(sp2 + 1);
	if (version != "HTTP/1.0" && version != "HTTP/1.1") return plain_error(400, "Bad Request");
	// The query string does not select anything here.
	std::string_view path = target.substr(0, target.find('?'));
	if (method != "GET" && method != "HEAD") return plain_error(405, "Method Not Allowed", "Allow: GET, HEAD\r\n");
	if (path != "/metrics") return plain_error(404, "Not Found");
	return status_response(200, "OK", {}, method == "HEAD", body(), "text/plain; version=0.0.4; charset=utf-8");
}

UniqueFd open_metrics_socket(const std::string& listen) {
	size_t colon = listen.rfind(':');
	if (colon == std::string::npos || colon + 1 == listen.size())
		throw std::runtime_error("metrics listen " + listen + ": expected IP:port");
	std::string host = listen.substr(0, colon);
	if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
	int port = 0;
	for (char c : listen.substr(colon + 1)) {
		if (c < '0' || c > '9' || port > 65535)
			throw std::runtime_error("metrics listen " + listen + ": bad port");
		port = port * 10 + (c - '0');
	}
	if (port > 65535) throw std::runtime_error("metrics listen " + listen + ": bad port");
	return net::open_listen_socket(host, port);
}

HttpResponder::HttpResponder(struct ev_loop* loop, UniqueFd listen_fd, std::function<std::string()> page)
	: loop_(loop), listen_fd_(std::move(listen_fd)), page_(std::move(page)), resume_(loop, [this] { start(); }) {
	ev_io_init(&accept_io_, &HttpResponder::accept_trampoline, listen_fd_.get(), EV_READ);
	accept_io_.data = this;
}

HttpResponder::~HttpResponder() {
	resume_.stop();
	stop();
	// The clients' watchers stop before their sockets close (member order).
	clients_.clear();
}

void HttpResponder::start() {
	if (accepting_) return;
	ev_io_start(loop_, &accept_io_);
	ev_unref(loop_);
	accepting_ = true;
}

void HttpResponder::stop() {
	if (!accepting_) return;
	ev_ref(loop_);  // libev: undo the unref before stopping an unref'd watcher
	ev_io_stop(loop_, &accept_io_);
	accepting_ = false;
}

void HttpResponder::accept_trampoline(struct ev_loop*, ev_io* w, int) {
	static_cast<HttpResponder*>(w->data)->on_accept();
}

void HttpResponder::on_accept() {
	closed_.clear();
	for (;;) {
		UniqueFd fd = net::accept_connection(listen_fd_.get());
		if (!fd) {
			if (errno == EINTR || errno == ECONNABORTED) continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				stop();
				resume_.start(1.0);
			}
			return;  // EAGAIN: all taken
		}
		if (clients_.size() >= max_clients) {
			continue;  // closed: a scraper retries; holding more would let anyone pin fds
		}
		uint64_t id = next_id_++;
		auto c = std::make_unique<Client>();
		c->fd = std::move(fd);
		c->io = std::make_unique<core::IoWatcher>(loop_, [this, id](int) { on_client_io(id); });
		c->deadline = std::make_unique<core::TimerWatcher>(loop_, [this, id] { close_client(id); });
		c->io->set(c->fd.get(), EV_READ);
		c->deadline->start(request_timeout_s);
		clients_.emplace(id, std::move(c));
	}
}

void HttpResponder::close_client(uint64_t id) {
	auto it = clients_.find(id);
	if (it == clients_.end()) return;
	Client& c = *it->second;
	c.io->stop();
	c.deadline->stop();
	c.fd.reset();
	closed_.push_back(std::move(it->second));
	clients_.erase(it);
}

void HttpResponder::on_client_io(uint64_t id) {
	closed_.clear();
	auto it = clients_.find(id);
	if (it == clients_.end()) return;
	Client& c = *it->second;
	char buf[4096];
	if (c.draining) {
		for (;;) {
			ssize_t n = recv(c.fd.get(), buf, sizeof buf, 0);
			if (n < 0 && errno == EINTR) continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
			if (n > 0 && (c.discarded += static_cast<size_t>(n)) <= 64 * 1024) continue;
			close_client(id);  // EOF, error, or too much to discard
			return;
		}
	}
	if (!c.out.empty()) {
		write_some(id);
		return;
	}
	for (;;) {
		ssize_t n = recv(c.fd.get(), buf, sizeof buf, 0);
		if (n > 0) {
			c.in.append(buf, static_cast<size_t>(n));
			// The head ends at an empty line (RFC 9112 2.1); bare LF tolerated.
			size_t end = std::min(c.in.find("\r\n\r\n"), c.in.find("\n\n"));
			if (end != std::string::npos && end < max_request_head) {
				respond(c);
				write_some(id);
				return;
			}
			if (c.in.size() > max_request_head) {
				c.out = plain_error(431, "Request Header Fields Too Large");  // RFC 6585 5
				c.in.clear();
				write_some(id);
				return;
			}
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
		if (n < 0 && errno == EINTR) continue;
		close_client(id);  // EOF before a complete head, or an error
		return;
	}
}

void HttpResponder::respond(Client& c) {
	c.out = http_response(c.in, page_);
	c.in.clear();
	c.in.shrink_to_fit();
}

void HttpResponder::write_some(uint64_t id) {
	auto it = clients_.find(id);
	if (it == clients_.end()) return;
	Client& c = *it->second;
	while (c.sent < c.out.size()) {
		ssize_t n = send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
		if (n > 0) {
			c.sent += static_cast<size_t>(n);
			continue;
		}
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c.io->set(c.fd.get(), EV_WRITE);
			return;
		}
		close_client(id);
		return;
	}
	// One request per connection: half-close so the client sees the end,
	// then wait (briefly) for its close.
	shutdown(c.fd.get(), SHUT_WR);
	c.draining = true;
	c.io->set(c.fd.get(), EV_READ);
	c.deadline->start(2.0);
}

}  // namespace tern::metrics
