#include "helpers/smtp_sink.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers/smtp_client.h"

namespace tern::testing {

namespace {

std::string upper_prefix(const std::string& s, size_t n) {
	std::string out = s.substr(0, n);
	for (char& c : out)
		if (c >= 'a' && c <= 'z')
			c = char(c - 'a' + 'A');
	return out;
}

std::string angle_content(const std::string& s) {
	size_t open = s.find('<'), close = s.find('>', open == std::string::npos ? 0 : open);
	if (open == std::string::npos || close == std::string::npos)
		return "";
	return s.substr(open + 1, close - open - 1);
}

// A line reader with a poll deadline and the sink's stop flag.
class LineReader {
public:
	LineReader(int fd, const std::atomic<bool>& stop) : fd_(fd), stop_(stop) {}
	bool read_line(std::string& line) {
		int64_t deadline = now_ms() + 30000;
		for (;;) {
			size_t eol = buf_.find('\n');
			if (eol != std::string::npos) {
				line = buf_.substr(0, eol + 1);
				buf_.erase(0, eol + 1);
				return true;
			}
			if (stop_ || now_ms() > deadline)
				return false;
			pollfd pfd{fd_, POLLIN, 0};
			if (poll(&pfd, 1, 50) <= 0)
				continue;
			char tmp[16384];
			ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
			if (n <= 0)
				return false;
			buf_.append(tmp, size_t(n));
		}
	}

private:
	int fd_;
	const std::atomic<bool>& stop_;
	std::string buf_;
};

bool write_line(int fd, const std::string& line) {
	std::string out = line + "\r\n";
	size_t off = 0;
	while (off < out.size()) {
		ssize_t n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
		if (n <= 0)
			return false;
		off += size_t(n);
	}
	return true;
}

}  // namespace

SmtpSink::SmtpSink() {
	listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd_ < 0)
		throw std::runtime_error(std::string("sink socket: ") + strerror(errno));
	int one = 1;
	setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sockaddr_in sin{};
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0 || listen(listen_fd_, 64) != 0)
		throw std::runtime_error(std::string("sink bind/listen: ") + strerror(errno));
	socklen_t len = sizeof(sin);
	getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sin), &len);
	port_ = ntohs(sin.sin_port);
	thread_ = std::thread([this] { serve(); });
}

SmtpSink::~SmtpSink() { stop(); }

void SmtpSink::stop() {
	stop_ = true;
	if (thread_.joinable())
		thread_.join();
	if (listen_fd_ >= 0)
		::close(listen_fd_);
	listen_fd_ = -1;
}

void SmtpSink::set_replies(const Replies& replies) {
	std::lock_guard<std::mutex> lock(mutex_);
	replies_ = replies;
}

std::vector<SinkMessage> SmtpSink::messages() const {
	std::lock_guard<std::mutex> lock(mutex_);
	return messages_;
}

bool SmtpSink::wait_for_messages(size_t n, int timeout_ms) const {
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		if (messages().size() >= n)
			return true;
		if (now_ms() > deadline)
			return false;
		usleep(20000);
	}
}

void SmtpSink::serve() {
	while (!stop_) {
		pollfd pfd{listen_fd_, POLLIN, 0};
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		connections_++;
		if (concurrent_) {
			session_threads_.emplace_back([this, fd] {
				session(fd);
				::close(fd);
			});
			continue;
		}
		session(fd);
		::close(fd);
	}
	for (auto& t : session_threads_)
		t.join();
	session_threads_.clear();
}

void SmtpSink::session(int fd) {
	auto reply = [this](std::string Replies::*which) {
		std::lock_guard<std::mutex> lock(mutex_);
		return replies_.*which;
	};
	LineReader reader(fd, stop_);
	if (!write_line(fd, reply(&Replies::greeting)))
		return;
	SinkMessage msg;
	std::string line;
	while (reader.read_line(line)) {
		std::string cmd = line;
		while (!cmd.empty() && (cmd.back() == '\n' || cmd.back() == '\r'))
			cmd.pop_back();
		std::string verb = upper_prefix(cmd, 4);
		bool ok = true;
		if (verb == "EHLO" || verb == "HELO") {
			msg = SinkMessage{};
			msg.helo = cmd.size() > 5 ? cmd.substr(5) : "";
			if (verb == "EHLO")
				ok = write_line(fd, "250-sink.test.example") && write_line(fd, "250-PIPELINING") &&
				     write_line(fd, "250-8BITMIME") && write_line(fd, "250 SMTPUTF8");
			else
				ok = write_line(fd, "250 sink.test.example");
		} else if (verb == "MAIL") {
			std::string r = reply(&Replies::mail);
			if (!r.empty() && r[0] == '2') {
				msg.mail_from = angle_content(cmd);
				msg.rcpt_to.clear();
			}
			ok = write_line(fd, r);
		} else if (verb == "RCPT") {
			std::string r = reply(&Replies::rcpt);
			if (!r.empty() && r[0] == '2')
				msg.rcpt_to.push_back(angle_content(cmd));
			ok = write_line(fd, r);
		} else if (verb == "DATA") {
			std::string r = reply(&Replies::data);
			ok = write_line(fd, r);
			if (!r.empty() && r[0] == '3') {
				// RFC 5321 4.5.2: remove one leading dot; CRLF.CRLF ends the data.
				std::string data;
				bool complete = false;
				while (reader.read_line(line)) {
					if (line == ".\r\n") {
						complete = true;
						break;
					}
					if (!line.empty() && line[0] == '.')
						line.erase(0, 1);
					data += line;
				}
				if (!complete)
					return;
				msg.data = data;
				msg.received_ms = now_ms();
				msg.acked_ms = 0;
				data_received_++;
				int delay_ms = 0;
				{
					std::lock_guard<std::mutex> lock(mutex_);
					delay_ms = replies_.data_end_delay_ms;
				}
				for (int64_t until = now_ms() + delay_ms; !stop_ && now_ms() < until;)
					usleep(10000);
				std::string end = reply(&Replies::data_end);
				bool accepted = !end.empty() && end[0] == '2';
				size_t index = 0;
				if (accepted) {
					std::lock_guard<std::mutex> lock(mutex_);
					index = messages_.size();
					messages_.push_back(msg);
				}
				ok = write_line(fd, end);
				if (ok && accepted) {
					std::lock_guard<std::mutex> lock(mutex_);
					messages_[index].acked_ms = now_ms();
				}
			}
		} else if (verb == "RSET") {
			msg.mail_from.clear();
			msg.rcpt_to.clear();
			ok = write_line(fd, "250 2.0.0 ok");
		} else if (verb == "NOOP") {
			ok = write_line(fd, "250 2.0.0 ok");
		} else if (verb == "QUIT") {
			int delay_ms = 0;
			{
				std::lock_guard<std::mutex> lock(mutex_);
				delay_ms = replies_.quit_delay_ms;
			}
			for (int64_t until = now_ms() + delay_ms; !stop_ && now_ms() < until;)
				usleep(10000);
			write_line(fd, "221 2.0.0 bye");
			return;
		} else {
			ok = write_line(fd, "500 5.5.1 unknown command");
		}
		if (!ok)
			return;
	}
}

}  // namespace tern::testing
