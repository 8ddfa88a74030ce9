#include "net/lmtp_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/connect.h"
#include "util/log.h"

namespace tern::net {

namespace {
constexpr size_t body_chunk_size = 64 * 1024;
}  // namespace

LmtpClient::LmtpClient(struct ev_loop* loop, core::WorkerPool& pool, LmtpRequest request, LmtpDone done)
	: loop_(loop), pool_(pool), request_(std::move(request)), done_(std::move(done)),
	  protocol_(request_.transaction), io_(loop, [this](int revents) { on_io(revents); }), timer_(loop, [this] {
		  fail("timeout after " + std::to_string(static_cast<int64_t>(request_.timeout_s)) +
	               "s waiting for the LMTP server " + request_.target.text());
	  }) {}

LmtpClient::~LmtpClient() = default;

void LmtpClient::start() {
	self_ = shared_from_this();
	if (open_body()) connect();
}

void LmtpClient::start_over(std::unique_ptr<ByteStream> stream) {
	self_ = shared_from_this();
	transport_ = std::make_unique<Transport>(std::move(stream));
	if (!open_body()) return;
	restart_timer();  // for the greeting
	update_watch();
}

// False when the client is already finished (nothing to say, or no file).
bool LmtpClient::open_body() {
	if (protocol_.done()) {  // no recipients: nothing to say
		finish();
		return false;
	}
	body_ = std::make_shared<UniqueFd>(::open(request_.body_path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!*body_) {
		fail("opening message file: " + std::string(std::strerror(errno)));
		return false;
	}
	return true;
}

void LmtpClient::connect() {
	const config::LmtpTarget& t = request_.target;
	OutgoingStream out = connect_stream(t.unix_path, t.ip, t.port);
	if (!out.stream) {
		fail("connecting to LMTP server " + t.text() + ": " + out.error);
		return;
	}
	transport_ = std::make_unique<Transport>(std::move(out.stream));
	restart_timer();
	connecting_ = out.in_progress;
	update_watch();
}

void LmtpClient::connected() {
	if (std::string error = connect_result(transport_->stream()); !error.empty()) {
		fail("connecting to LMTP server " + request_.target.text() + ": " + error);
		return;
	}
	connecting_ = false;
	restart_timer();  // now for the greeting
	update_watch();
}

void LmtpClient::on_io(int revents) {
	if (finished_) return;
	if (connecting_) {
		connected();
		return;
	}
	if (revents & EV_READ) {
		read_input();
		if (finished_) return;
	}
	if (revents & EV_WRITE) write_output();
}

void LmtpClient::read_input() {
	char scratch[4096];
	std::string input;
	IoStatus st = transport_->read_into(input, scratch, sizeof scratch);
	if (st == IoStatus::want_read || st == IoStatus::want_write) return;
	if (st != IoStatus::ok) {
		fail(st == IoStatus::closed ? "LMTP server closed the connection"
		                            : "reading from LMTP server: " + transport_->last_error());
		return;
	}
	restart_timer();  // a reply is progress
	protocol_.receive(input);
	after_protocol_step();
}

void LmtpClient::after_protocol_step() {
	if (protocol_.step() == smtp::LmtpClientProtocol::Step::body && !body_started_) {
		body_started_ = true;
		protocol_.body_chunk(request_.prefix);
		request_chunk();
	}
	if (protocol_.done()) {
		// What the protocol found wrong (a reply that is none, one of an
		// unknown class, a greeting refused) is logged as a lost connection
		// is (fail): the client's reply does not name our LMTP server.
		for (const smtp::LmtpRecipientResult& r : protocol_.results()) {
			if (!r.local) continue;
			log_failure(r.text);
			break;
		}
		// Say QUIT if it fits in the stream now; the results are final either way.
		std::string& out = protocol_.output();
		size_t n = 0;
		if (!out.empty()) (void)transport_->write(out.data(), out.size(), n);
		finish();
		return;
	}
	update_watch();
}

void LmtpClient::write_output() {
	std::string& out = protocol_.output();
	if (!out.empty()) {
		size_t n = 0;
		IoStatus st = transport_->write(out.data(), out.size(), n);
		out.erase(0, n);
		if (n > 0) restart_timer();  // the server takes our bytes
		if (st == IoStatus::closed || st == IoStatus::error) {
			fail("writing to LMTP server: " + transport_->last_error());
			return;
		}
	}
	if (out.empty() && protocol_.step() == smtp::LmtpClientProtocol::Step::body) request_chunk();
	update_watch();
}

// The next piece of the file, read on a worker; only once the previous one
// went out, so at most one chunk is in memory.
void LmtpClient::request_chunk() {
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
		    do n = ::pread(body->get(), chunk->data(), chunk->size(), static_cast<off_t>(offset));
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

void LmtpClient::chunk_read(const std::string& chunk, int error) {
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

void LmtpClient::update_watch() {
	if (finished_ || !transport_) return;
	if (connecting_) {
		wanted_io_ = EV_WRITE;  // a connect in progress ends with the socket writable
	} else {
		// Always readable: a reply, or the server hanging up.
		Transport::Interest interest = transport_->interest(true, !protocol_.output().empty());
		wanted_io_ = (interest.read ? EV_READ : 0) | (interest.write ? EV_WRITE : 0);
	}
	if (transport_->fd() >= 0) io_.set(transport_->fd(), wanted_io_);
}

void LmtpClient::restart_timer() { timer_.start(request_.timeout_s); }

// "lmtp delivery failed" (man/ternd.8 LMTP DELIVERY), however it failed.
void LmtpClient::log_failure(const std::string& reason) const {
	log::event(log::Level::info, request_.log_id, "lmtp delivery failed",
	           {{"server", request_.target.text()}, {"error", reason}});
}

void LmtpClient::fail(const std::string& reason) {
	if (finished_) return;
	log_failure(reason);
	protocol_.connection_failed(reason);
	finish();
}

// Stops all I/O and hands the results over from a fresh loop iteration, so
// `done` never runs inside this object's callbacks and the object is
// destroyed outside of them.
void LmtpClient::finish() {
	if (finished_) return;
	finished_ = true;
	wanted_io_ = 0;
	io_.stop();
	timer_.stop();
	transport_.reset();  // closes the connection
	body_.reset();
	core::run_soon(loop_, [self = std::move(self_)] {
		auto done = std::move(self->done_);
		done(self->protocol_.results());
	});
}

void lmtp_deliver(struct ev_loop* loop, core::WorkerPool& pool, LmtpRequest request, LmtpDone done) {
	auto client = std::make_shared<LmtpClient>(loop, pool, std::move(request), std::move(done));
	client->start();
}

}  // namespace tern::net
