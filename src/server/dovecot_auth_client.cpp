#include "server/dovecot_auth_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/unix_socket.h"

namespace tern::server {

namespace {

// Dovecot's own limit for a line of this protocol is 16384 bytes; a longer
// one is not Dovecot talking.
constexpr size_t max_line = 16384;

}  // namespace

DovecotAuthClient::DovecotAuthClient(struct ev_loop* loop, std::string socket_path, double timeout_s)
	: loop_(loop), socket_path_(std::move(socket_path)), timeout_s_(timeout_s),
	  io_(loop, [this](int revents) { on_io(revents); }), timer_(loop, [this] { on_timeout(); }) {}

DovecotAuthClient::~DovecotAuthClient() { close(); }

void DovecotAuthClient::close() {
	io_.stop();
	timer_.stop();
	fd_.reset();
}

void DovecotAuthClient::start(sasl::dovecot::AuthRequest request, Callback cb) {
	request_ = std::move(request);
	cb_ = std::move(cb);
	connect_and_send_hello();
}

void DovecotAuthClient::probe(Callback cb) {
	request_.reset();
	cb_ = std::move(cb);
	connect_and_send_hello();
}

void DovecotAuthClient::connect_and_send_hello() {
	auto keep = shared_from_this();
	auto addr = net::unix_address(socket_path_);
	if (!addr) return fail("socket path too long: " + socket_path_);
	fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!fd_) return fail(std::string("socket: ") + std::strerror(errno));
	// A Unix stream connect completes at once or fails at once; EAGAIN is a
	// full backlog, which a loop must not wait out.
	if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0 && errno != EINPROGRESS)
		return fail("connect " + socket_path_ + ": " + std::strerror(errno));
	out_ = sasl::dovecot::ClientProtocol::hello(static_cast<long>(::getpid()));
	timer_.start(timeout_s_);
	io_.set(fd_.get(), EV_READ | EV_WRITE);
}

void DovecotAuthClient::answer(std::string data, Callback cb) {
	cb_ = std::move(cb);
	if (!fd_) {
		// Dovecot went away while the client was answering.
		if (!failure_) fail("Dovecot closed the connection");
		timer_.start(0);
		return;
	}
	std::string line = protocol_.cont(data);
	if (line.empty()) return fail("no challenge pending");
	out_ += line;
	timer_.start(timeout_s_);
	// Dovecot speaks only after the client's answer.
	if (in_.find('\n') != std::string::npos) return fail("Dovecot spoke out of turn");
	flush();
}

// Writes what is pending; false when the connection failed (reported).
bool DovecotAuthClient::flush() {
	while (!out_.empty()) {
		ssize_t n = ::send(fd_.get(), out_.data(), out_.size(), MSG_NOSIGNAL);
		if (n > 0) {
			out_.erase(0, static_cast<size_t>(n));
			continue;
		}
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			io_.set(fd_.get(), EV_READ | EV_WRITE);
			return true;
		}
		fail(std::string("writing to Dovecot: ") + std::strerror(errno));
		return false;
	}
	io_.set(fd_.get(), EV_READ);
	return true;
}

void DovecotAuthClient::on_io(int revents) {
	auto keep = shared_from_this();
	if ((revents & EV_WRITE) && !flush()) return;
	if (!(revents & EV_READ) || !fd_) return;
	char buf[4096];
	for (;;) {
		ssize_t n = ::read(fd_.get(), buf, sizeof buf);
		if (n > 0) {
			in_.append(buf, static_cast<size_t>(n));
			continue;
		}
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
		// EOF or an error: whatever came before it is still judged first.
		process_lines();
		if (!finished_ && fd_.valid())
			fail(n == 0 ? std::string("Dovecot closed the connection")
			            : std::string("reading from Dovecot: ") + std::strerror(errno));
		return;
	}
	process_lines();
}

void DovecotAuthClient::process_lines() {
	// Stops after an outcome: the next step is the session's.
	while (fd_.valid() && cb_) {
		size_t lf = in_.find('\n');
		if (lf == std::string::npos) {
			if (in_.size() > max_line) fail("line from Dovecot too long");
			return;
		}
		std::string line = in_.substr(0, lf);
		in_.erase(0, lf + 1);
		handle(protocol_.feed(line));
	}
}

void DovecotAuthClient::handle(const sasl::dovecot::Event& e) {
	using Kind = sasl::dovecot::Event::Kind;
	Outcome o;
	switch (e.kind) {
	case Kind::none: return;
	case Kind::handshake_done:
		if (!request_) {
			o.kind = Outcome::Kind::handshake;
			o.mechanisms = protocol_.mechanisms();
			handshake_reported_ = true;
			deliver(std::move(o), true);
			return;
		}
		if (!protocol_.offers(request_->mechanism)) {
			o.kind = Outcome::Kind::unsupported;
			o.mechanisms = protocol_.mechanisms();
			handshake_reported_ = true;
			deliver(std::move(o), true);
			return;
		}
		out_ += protocol_.auth(*request_);
		flush();
		return;
	case Kind::challenge:
		o.kind = Outcome::Kind::challenge;
		o.data = e.data;
		// The SMTP client takes its time; the deadline runs again from answer().
		timer_.stop();
		deliver(std::move(o), false);
		return;
	case Kind::success:
		o.kind = Outcome::Kind::success;
		o.user = e.user;
		o.data = e.data;
		o.has_data = e.has_data;
		deliver(std::move(o), true);
		return;
	case Kind::failure:
		o.kind = Outcome::Kind::failure;
		o.user = e.user;
		o.reason = e.reason;
		deliver(std::move(o), true);
		return;
	case Kind::temporary_failure:
		fail("temporary failure" + (e.reason.empty() ? std::string() : ": " + e.reason));
		return;
	case Kind::protocol_error: fail("protocol error: " + e.reason); return;
	}
}

void DovecotAuthClient::on_timeout() {
	auto keep = shared_from_this();
	if (!cb_) return;  // the failure waits for the session's next step
	if (!failure_) {
		failure_ = Outcome{};
		failure_->reason = "no answer from Dovecot within " +
		    std::to_string(static_cast<long>(timeout_s_ * 1000)) + " ms";
	}
	Outcome o = std::move(*failure_);
	failure_.reset();
	deliver(std::move(o), true);
}

// The connection is given up now; the outcome (unavailable) is delivered
// from the loop, never from inside a call the session made.
void DovecotAuthClient::fail(std::string reason) {
	if (failure_) return;
	finished_ = true;
	close();
	failure_ = Outcome{};
	failure_->kind = Outcome::Kind::unavailable;
	failure_->reason = std::move(reason);
	timer_.start(0);
}

// Hands one outcome to the waiting callback. Nothing of this object is
// touched after the callback: the session may drop it from there.
void DovecotAuthClient::deliver(Outcome o, bool final) {
	if (!handshake_reported_ && protocol_.handshake_done()) {
		handshake_reported_ = true;
		o.mechanisms = protocol_.mechanisms();
	}
	if (final) {
		finished_ = true;
		close();
	}
	Callback cb = std::move(cb_);
	cb_ = nullptr;
	if (cb) cb(std::move(o));
}

}  // namespace tern::server
