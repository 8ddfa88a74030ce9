#include "helpers/smtp_client.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

namespace tern::testing {

int64_t now_ms() {
	timespec ts{};
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

namespace {

bool is_base64url_char(char c) {
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// An enhanced status code (RFC 3463): class "." 1*3digit "." 1*3digit.
size_t enhanced_code_length(const std::string& s) {
	if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return 0;
	size_t i = 2, start = i;
	while (i < s.size() && is_digit(s[i]) && i - start < 3) i++;
	if (i == start || i >= s.size() || s[i] != '.') return 0;
	i++;
	start = i;
	while (i < s.size() && is_digit(s[i]) && i - start < 3) i++;
	if (i == start || (i < s.size() && s[i] != ' ')) return 0;
	return i;
}

int remaining_ms(int64_t deadline_ms) {
	int64_t left = deadline_ms - now_ms();
	return left < 0 ? 0 : int(left);
}

}  // namespace

bool ends_with_received_id(const std::string& s) {
	// " (" + 22 + ")" = 25 characters.
	if (s.size() < 25 || s.back() != ')') return false;
	size_t open = s.size() - 25;
	if (s[open] != ' ' || s[open + 1] != '(') return false;
	for (size_t i = open + 2; i < s.size() - 1; i++)
		if (!is_base64url_char(s[i])) return false;
	return true;
}

std::string strip_received_id(const std::string& s) {
	return ends_with_received_id(s) ? s.substr(0, s.size() - 25) : s;
}

std::string Reply::plain() const {
	if (!error.empty() || lines.empty())
		return "<error: " + (error.empty() ? std::string("no reply") : error) + ">";
	return strip_received_id(lines.back());
}

std::string Reply::message() const {
	std::string t = strip_received_id(text);
	if (!ecode.empty() && t.size() >= ecode.size()) t = t.substr(ecode.size());
	if (!t.empty() && t[0] == ' ') t = t.substr(1);
	return t;
}

bool Reply::has_id() const { return !lines.empty() && ends_with_received_id(lines.back()); }

std::string Reply::id() const {
	if (!has_id()) return "";
	const std::string& l = lines.back();
	return l.substr(l.size() - 23, 22);
}

SmtpClient::~SmtpClient() { close(); }

SmtpClient::SmtpClient(SmtpClient&& other) noexcept { *this = std::move(other); }

SmtpClient& SmtpClient::operator=(SmtpClient&& other) noexcept {
	if (this != &other) {
		close();
		fd_ = other.fd_;
		other.fd_ = -1;
		buf_ = std::move(other.buf_);
		unexpected_ = std::move(other.unexpected_);
		timeout_ms = other.timeout_ms;
		last_error = std::move(other.last_error);
	}
	return *this;
}

void SmtpClient::close() {
	if (fd_ >= 0) ::close(fd_);
	fd_ = -1;
	buf_.clear();
}

bool SmtpClient::connect(const std::string& host, int port) {
	close();
	sockaddr_storage ss{};
	socklen_t len = 0;
	int family = AF_INET;
	if (host.find(':') != std::string::npos) {
		family = AF_INET6;
		auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(uint16_t(port));
		if (inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr) != 1) {
			last_error = "bad address " + host;
			return false;
		}
		len = sizeof(*sin6);
	} else {
		auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
		sin->sin_family = AF_INET;
		sin->sin_port = htons(uint16_t(port));
		if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) != 1) {
			last_error = "bad address " + host;
			return false;
		}
		len = sizeof(*sin);
	}
	int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		last_error = std::string("socket: ") + strerror(errno);
		return false;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
		last_error = std::string("connect: ") + strerror(errno);
		::close(fd);
		return false;
	}
	pollfd pfd{fd, POLLOUT, 0};
	if (poll(&pfd, 1, timeout_ms) != 1) {
		last_error = "connect: timeout";
		::close(fd);
		return false;
	}
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	if (soerr != 0) {
		last_error = std::string("connect: ") + strerror(soerr);
		::close(fd);
		return false;
	}
	fd_ = fd;
	return true;
}

bool SmtpClient::send(const std::string& bytes) {
	if (fd_ < 0) {
		last_error = "not connected";
		return false;
	}
	int64_t deadline = now_ms() + timeout_ms;
	size_t off = 0;
	while (off < bytes.size()) {
		ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += size_t(n);
			continue;
		}
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			pollfd pfd{fd_, POLLOUT, 0};
			int left = remaining_ms(deadline);
			if (left == 0 || poll(&pfd, 1, left) <= 0) {
				last_error = "send: timeout";
				return false;
			}
			continue;
		}
		last_error = std::string("send: ") + strerror(errno);
		return false;
	}
	return true;
}

bool SmtpClient::fill(int64_t deadline_ms, std::string& err) {
	if (fd_ < 0) {
		err = "not connected";
		return false;
	}
	for (;;) {
		// Wait first: a reply is seldom in yet when the client asks for it,
		// so a recv() first would mostly cost a system call that says
		// EAGAIN (the bench runs this client beside the servers it measures).
		pollfd pfd{fd_, POLLIN, 0};
		int ready = poll(&pfd, 1, remaining_ms(deadline_ms));
		if (ready < 0 && errno == EINTR) continue;
		if (ready <= 0) {
			err = "timeout";
			return false;
		}
		char tmp[65536];
		ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
		if (n > 0) {
			buf_.append(tmp, size_t(n));
			return true;
		}
		if (n == 0) {
			err = "eof";
			return false;
		}
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
		err = errno == ECONNRESET ? "reset" : std::string("recv: ") + strerror(errno);
		return false;
	}
}

Reply SmtpClient::read_reply() {
	Reply r;
	int64_t deadline = now_ms() + timeout_ms;
	size_t consumed = 0;
	for (;;) {
		size_t eol = buf_.find('\n', consumed);
		if (eol == std::string::npos) {
			std::string err;
			if (!fill(deadline, err)) {
				r.error = err;
				r.raw = buf_;
				r.code = 0;
				last_error = err;
				buf_.clear();
				return r;
			}
			continue;
		}
		std::string line = buf_.substr(consumed, eol - consumed);
		consumed = eol + 1;
		if (!line.empty() && line.back() == '\r') line.pop_back();
		r.lines.push_back(line);
		bool valid = line.size() >= 3 && is_digit(line[0]) && is_digit(line[1]) && is_digit(line[2]) &&
		    (line.size() == 3 || line[3] == ' ' || line[3] == '-');
		if (!valid) {
			r.error = "malformed: " + line;
			break;
		}
		if (line.size() == 3 || line[3] == ' ') {
			r.code = std::stoi(line.substr(0, 3));
			r.text = line.size() > 4 ? line.substr(4) : "";
			size_t el = enhanced_code_length(r.text);
			r.ecode = r.text.substr(0, el);
			break;
		}
	}
	r.raw = buf_.substr(0, consumed);
	buf_.erase(0, consumed);
	return r;
}

Reply SmtpClient::cmd(const std::string& line) {
	if (!send(line + "\r\n")) {
		Reply r;
		r.error = last_error;
		return r;
	}
	return read_reply();
}

bool SmtpClient::greet_and_ehlo(const std::string& name) {
	Reply g = read_reply();
	if (g.code != 220) return false;
	Reply e = cmd("EHLO " + name);
	return e.code == 250;
}

bool SmtpClient::expect_closed() {
	unexpected_ = buf_;
	buf_.clear();
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		std::string err;
		if (!fill(deadline, err)) {
			bool closed = err == "eof" || err == "reset";
			if (closed) close();
			return closed && unexpected_.empty();
		}
		unexpected_ += buf_;
		buf_.clear();
	}
}

std::string SmtpClient::recv_once() {
	if (!buf_.empty()) {
		std::string out;
		out.swap(buf_);
		return out;
	}
	std::string err;
	if (!fill(now_ms() + timeout_ms, err)) return "";
	std::string out;
	out.swap(buf_);
	return out;
}

bool SmtpClient::readable_within(int ms) {
	if (!buf_.empty()) return true;
	if (fd_ < 0) return false;
	pollfd pfd{fd_, POLLIN, 0};
	return poll(&pfd, 1, ms) == 1;
}

}  // namespace tern::testing
