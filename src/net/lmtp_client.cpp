#include "net/lmtp_client.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "core/watchers.h"
#include "net/unix_socket.h"
#include "util/ipaddr.h"
#include "util/log.h"

namespace tern::net {

namespace {

constexpr size_t body_chunk_size = 64 * 1024;

// The open message file, shared with the worker reading from it: it stays
// open (and readable after an unlink) until the last reader is done.
struct BodyFile {
	int fd = -1;
	~BodyFile() {
		if (fd >= 0) ::close(fd);
	}
};

class LmtpClient : public std::enable_shared_from_this<LmtpClient> {
public:
	LmtpClient(struct ev_loop* loop, core::WorkerPool& pool, LmtpRequest request, LmtpDone done)
		: loop_(loop), pool_(pool), request_(std::move(request)), done_(std::move(done)),
		  protocol_(request_.transaction), io_(loop, [this](int revents) { on_io(revents); }),
		  timer_(loop, [this] {
			  fail("timeout after " + std::to_string(static_cast<int64_t>(request_.timeout_s)) +
		               "s waiting for the LMTP server " + request_.target.text());
		  }) {}

	~LmtpClient() {
		if (fd_ >= 0) ::close(fd_);
	}

	void start() {
		self_ = shared_from_this();
		if (protocol_.done()) {  // no recipients: nothing to say
			finish();
			return;
		}
		body_ = std::make_shared<BodyFile>();
		body_->fd = ::open(request_.body_path.c_str(), O_RDONLY | O_CLOEXEC);
		if (body_->fd < 0) {
			fail("opening message file: " + std::string(std::strerror(errno)));
			return;
		}
		connect();
	}

private:
	void connect() {
		const config::LmtpTarget& t = request_.target;
		sockaddr_storage ss{};
		socklen_t len = 0;
		if (!t.unix_path.empty()) {
			auto addr = unix_address(t.unix_path);
			if (!addr) {
				fail("LMTP socket path too long: " + t.unix_path);
				return;
			}
			std::memcpy(&ss, &*addr, sizeof *addr);
			len = sizeof *addr;
		} else {
			auto ip = IpAddr::parse(t.ip);
			if (!ip) {
				fail("bad LMTP address " + t.ip);
				return;
			}
			len = ip->to_sockaddr(t.port, ss);
		}
		fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd_ < 0) {
			fail(std::string("socket: ") + std::strerror(errno));
			return;
		}
		timer_.start(request_.timeout_s);
		if (::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
			connected_ = true;
			update_watch();
			return;
		}
		if (errno != EINPROGRESS) {
			fail("connecting to LMTP server " + t.text() + ": " + std::strerror(errno));
			return;
		}
		io_.set(fd_, EV_WRITE);
	}

	void on_io(int revents) {
		if (!connected_) {
			int err = 0;
			socklen_t len = sizeof err;
			if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
			if (err != 0) {
				fail("connecting to LMTP server " + request_.target.text() + ": " + std::strerror(err));
				return;
			}
			connected_ = true;
			timer_.start(request_.timeout_s);  // now for the greeting
			update_watch();
			return;
		}
		if (revents & EV_READ) {
			read_input();
			if (finished_) return;
		}
		if (revents & EV_WRITE) write_output();
	}

	void read_input() {
		char buf[4096];
		ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
		if (n <= 0) {
			fail(n == 0 ? "LMTP server closed the connection"
			            : "reading from LMTP server: " + std::string(std::strerror(errno)));
			return;
		}
		timer_.start(request_.timeout_s);  // a reply is progress
		protocol_.receive(std::string_view(buf, static_cast<size_t>(n)));
		after_protocol_step();
	}

	void after_protocol_step() {
		if (protocol_.step() == smtp::LmtpClientProtocol::Step::body && !body_started_) {
			body_started_ = true;
			protocol_.body_chunk(request_.prefix);
			request_chunk();
		}
		if (protocol_.done()) {
			// Say QUIT if it fits in the socket now; the results are final either way.
			std::string& out = protocol_.output();
			if (!out.empty()) (void)::send(fd_, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
			finish();
			return;
		}
		update_watch();
	}

	void write_output() {
		std::string& out = protocol_.output();
		while (!out.empty()) {
			ssize_t n = ::send(fd_, out.data(), out.size(), MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR) continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
			if (n <= 0) {
				fail("writing to LMTP server: " + std::string(std::strerror(errno)));
				return;
			}
			out.erase(0, static_cast<size_t>(n));
			timer_.start(request_.timeout_s);  // the server takes our bytes
		}
		if (out.empty() && protocol_.step() == smtp::LmtpClientProtocol::Step::body) request_chunk();
		update_watch();
	}

	// The next piece of the file, read on a worker; only once the previous
	// one went out, so at most one chunk is in memory.
	void request_chunk() {
		if (reading_ || body_eof_ || !protocol_.output().empty()) return;
		reading_ = true;
		auto chunk = std::make_shared<std::string>();
		auto error = std::make_shared<int>(0);
		uint64_t offset = request_.body_offset + body_read_;
		std::weak_ptr<LmtpClient> weak = weak_from_this();
		pool_.submit(
		    [body = body_, chunk, error, offset] {
			    chunk->resize(body_chunk_size);
			    ssize_t n;
			    do n = ::pread(body->fd, chunk->data(), chunk->size(), static_cast<off_t>(offset));
			    while (n < 0 && errno == EINTR);
			    if (n < 0) {
				    *error = errno;
				    n = 0;
			    }
			    chunk->resize(static_cast<size_t>(n));
		    },
		    [weak, chunk, error] {
			    auto self = weak.lock();
			    if (self && !self->finished_) self->chunk_read(*chunk, *error);
		    });
	}

	void chunk_read(const std::string& chunk, int error) {
		reading_ = false;
		if (error != 0) {
			fail("reading message file: " + std::string(std::strerror(error)));
			return;
		}
		if (chunk.empty()) {
			body_eof_ = true;
			protocol_.body_end();
		} else {
			body_read_ += chunk.size();
			protocol_.body_chunk(chunk);
		}
		write_output();
	}

	void update_watch() {
		if (finished_ || fd_ < 0) return;
		io_.set(fd_, EV_READ | (protocol_.output().empty() ? 0 : EV_WRITE));
	}

	void fail(const std::string& reason) {
		if (finished_) return;
		log::event(log::Level::info, request_.log_id, "lmtp delivery failed",
		           {{"server", request_.target.text()}, {"error", reason}});
		protocol_.connection_failed(reason);
		finish();
	}

	// Stops all I/O and hands the results over from a fresh loop iteration,
	// so `done` never runs inside this object's callbacks and the object is
	// destroyed outside of them.
	void finish() {
		if (finished_) return;
		finished_ = true;
		io_.stop();
		timer_.stop();
		if (fd_ >= 0) {
			::close(fd_);
			fd_ = -1;
		}
		body_.reset();
		auto* holder = new std::shared_ptr<LmtpClient>(std::move(self_));
		ev_once(
		    loop_, -1, 0, 0.0,
		    [](int, void* arg) {
			    std::unique_ptr<std::shared_ptr<LmtpClient>> keep(
				static_cast<std::shared_ptr<LmtpClient>*>(arg));
			    LmtpClient& c = **keep;
			    auto done = std::move(c.done_);
			    done(c.protocol_.results());
		    },
		    holder);
	}

	struct ev_loop* loop_;
	core::WorkerPool& pool_;
	LmtpRequest request_;
	LmtpDone done_;
	smtp::LmtpClientProtocol protocol_;
	core::IoWatcher io_;
	core::TimerWatcher timer_;
	std::shared_ptr<LmtpClient> self_;
	std::shared_ptr<BodyFile> body_;
	int fd_ = -1;
	bool connected_ = false;
	bool body_started_ = false;
	bool reading_ = false;
	bool body_eof_ = false;
	uint64_t body_read_ = 0;
	bool finished_ = false;
};

}  // namespace

void lmtp_deliver(struct ev_loop* loop, core::WorkerPool& pool, LmtpRequest request, LmtpDone done) {
	auto client = std::make_shared<LmtpClient>(loop, pool, std::move(request), std::move(done));
	client->start();
}

}  // namespace tern::net
