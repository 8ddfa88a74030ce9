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

// Bytes read and dropped after the answer before the client is closed.
constexpr size_t max_discarded = 64 * 1024;
// How long a client may take to close after its answer.
constexpr double drain_timeout_s = 2.0;

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

struct HttpResponder::Client : server::LocalClient {
	using LocalClient::LocalClient;
	std::string in;
	std::string out;
	size_t sent = 0;
	// Answer sent and write side shut: reading and discarding until the
	// client closes, so unread request bytes do not turn our close into a
	// reset that destroys the answer in flight (RFC 9112 9.6).
	bool draining = false;
	size_t discarded = 0;
};

HttpResponder::HttpResponder(struct ev_loop* loop, UniqueFd listen_fd, std::function<std::string()> page)
	: page_(std::move(page)), clients_(loop, "metrics", max_clients, request_timeout_s,
                                           {[](UniqueFd fd) { return std::make_unique<Client>(std::move(fd)); },
                                            [this](Client& c, int) { on_io(c); }, [](Client& c) { c.dead = true; },
                                            // RFC 9110 15.6.4: the scraper learns it is
                                            // turned away, and may retry.
                                            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                            "Connection: close\r\n\r\n"}) {
	clients_.listen(std::move(listen_fd), "");
}

// The clients and the socket go with clients_.
HttpResponder::~HttpResponder() = default;

void HttpResponder::start() { clients_.start(); }

void HttpResponder::stop() { clients_.stop(); }

void HttpResponder::on_io(Client& c) {
	if (c.draining)
		discard_input(c);
	else if (!c.out.empty())
		write_some(c);
	else
		read_request(c);
}

void HttpResponder::discard_input(Client& c) {
	char buf[4096];
	for (;;) {
		ssize_t n = recv(c.fd.get(), buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
		if (n > 0 && (c.discarded += static_cast<size_t>(n)) <= max_discarded) continue;
		c.dead = true;  // EOF, error, or too much to discard
		return;
	}
}

void HttpResponder::read_request(Client& c) {
	char buf[4096];
	for (;;) {
		ssize_t n = recv(c.fd.get(), buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
		if (n <= 0) {
			c.dead = true;  // EOF before a complete head, or an error
			return;
		}
		c.in.append(buf, static_cast<size_t>(n));
		// The head ends at an empty line (RFC 9112 2.1); bare LF tolerated.
		size_t end = std::min(c.in.find("\r\n\r\n"), c.in.find("\n\n"));
		if (end != std::string::npos && end < max_request_head)
			c.out = http_response(c.in, page_);
		else if (c.in.size() > max_request_head)
			c.out = plain_error(431, "Request Header Fields Too Large");  // RFC 6585 5
		else
			continue;
		c.in.clear();
		c.in.shrink_to_fit();
		write_some(c);
		return;
	}
}

void HttpResponder::write_some(Client& c) {
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
		c.dead = true;
		return;
	}
	// One request per connection: half-close so the client sees the end,
	// then wait (briefly) for its close.
	shutdown(c.fd.get(), SHUT_WR);
	c.draining = true;
	c.io->set(c.fd.get(), EV_READ);
	c.deadline->start(drain_timeout_s);
}

}  // namespace tern::metrics
