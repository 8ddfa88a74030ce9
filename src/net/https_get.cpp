#include "net/https_get.h"

#include <utility>

#include "net/connect.h"

namespace tern::net {

// One request; made with std::make_shared and started once.
class HttpsGet : public std::enable_shared_from_this<HttpsGet> {
public:
	HttpsGet(struct ev_loop* loop, HttpsGetRequest request, HttpsGetDone done)
		: loop_(loop), request_(std::move(request)), done_(std::move(done)), io_(loop, [this](int) { step(); }),
		  timer_(loop, [this] {
			  fail("timeout after " + std::to_string(static_cast<int64_t>(request_.timeout_s)) + "s");
		  }) {}

	void start() {
		self_ = shared_from_this();
		OutgoingStream out = connect_stream("", request_.ip, request_.port);
		if (!out.stream) {
			fail("connecting: " + out.error);
			return;
		}
		transport_ = std::make_unique<Transport>(std::move(out.stream));
		phase_ = out.in_progress ? Phase::connecting : Phase::handshake;
		// RFC 1945 5.1 / RFC 9112 3.2: the Host field names the policy
		// host; the server closes after its answer.
		output_ = "GET " + request_.path + " HTTP/1.1\r\nHost: " + request_.host +
		    "\r\nAccept: text/plain\r\nConnection: close\r\nUser-Agent: tern\r\n\r\n";
		timer_.start(request_.timeout_s);
		if (phase_ == Phase::connecting) {
			watch();  // a connect in progress ends with the socket writable
			return;
		}
		begin_tls();
		step();
	}

	// The owner no longer wants the result: also when it is already
	// waiting to be handed over.
	void cancel() {
		done_ = nullptr;
		if (finished_) return;
		finished_ = true;
		io_.stop();
		timer_.stop();
		transport_.reset();
		self_.reset();
	}

private:
	enum class Phase { connecting, handshake, talk };

	void begin_tls() {
		transport_->start_client_tls(request_.trust, request_.host, {});
		phase_ = Phase::handshake;
	}

	// Drives whatever the phase waits for; called at start and on each
	// event of the socket.
	void step() {
		if (finished_) return;
		if (phase_ == Phase::connecting) {
			if (std::string error = connect_result(transport_->stream()); !error.empty()) {
				fail("connecting: " + error);
				return;
			}
			begin_tls();
		}
		if (phase_ == Phase::handshake && !handshake()) return;
		if (!write_output() || !read_input()) return;
		watch();
	}

	// False when the handshake is still under way or failed.
	bool handshake() {
		IoStatus st = transport_->handshake();
		if (st == IoStatus::want_read || st == IoStatus::want_write) {
			watch();
			return false;
		}
		if (st != IoStatus::ok) {
			fail("TLS handshake: " + transport_->last_error());
			return false;
		}
		// RFC 8461 3.3: the policy host's certificate must be valid for
		// its name and chain to a trusted root.
		if (std::string why = transport_->tls()->peer_verify_error(); !why.empty()) {
			fail("certificate of " + request_.host + " not verified: " + why);
			return false;
		}
		phase_ = Phase::talk;
		return true;
	}

	bool write_output() {
		if (output_.empty()) return true;
		size_t n = 0;
		IoStatus st = transport_->write(output_.data(), output_.size(), n);
		output_.erase(0, n);
		if (st == IoStatus::closed || st == IoStatus::error) {
			fail("writing the request: " + transport_->last_error());
			return false;
		}
		return true;
	}

	// False when the request ended (done or failed). A server may send its
	// response in records of a byte each: the reads of one event are
	// capped, so that the loop serves others and the deadline can fire,
	// and whether the response is whole (a parse of all of it) is asked
	// once per burst, not after every record.
	bool read_input() {
		constexpr int max_reads_per_event = 64;
		for (int reads = 0; reads < max_reads_per_event; ++reads) {
			char scratch[4096];
			IoStatus st = transport_->read_into(response_, scratch, sizeof scratch);
			if (response_.size() > request_.max_bytes) {
				fail("response larger than " + std::to_string(request_.max_bytes) + " bytes");
				return false;
			}
			if (st == IoStatus::closed) {
				finish("");
				return false;
			}
			if (st == IoStatus::error) {
				fail("reading the response: " + transport_->last_error());
				return false;
			}
			if (st != IoStatus::ok && !transport_->has_buffered_input()) return !finished_when_complete();
		}
		if (finished_when_complete()) return false;
		// What TLS still holds decrypted announces itself by no socket
		// event: the next turn of the loop reads on.
		if (transport_->has_buffered_input())
			core::run_soon(loop_, [weak = weak_from_this()] {
				if (auto get = weak.lock()) get->step();
			});
		return true;
	}

	bool finished_when_complete() {
		if (!request_.complete || !request_.complete(response_)) return false;
		finish("");
		return true;
	}

	void watch() {
		int events = EV_WRITE;
		if (phase_ != Phase::connecting) {
			Transport::Interest interest = transport_->interest(true, !output_.empty());
			events = (interest.read ? EV_READ : 0) | (interest.write ? EV_WRITE : 0);
		}
		io_.set(transport_->fd(), events);
	}

	void fail(const std::string& why) { finish(why.empty() ? "failed" : why); }

	// Stops all I/O and hands the result over from a fresh loop iteration,
	// so `done` never runs inside this object's callbacks.
	void finish(std::string error) {
		if (finished_) return;
		finished_ = true;
		io_.stop();
		timer_.stop();
		transport_.reset();
		result_.error = std::move(error);
		if (result_.error.empty()) result_.response = std::move(response_);
		core::run_soon(loop_, [self = std::move(self_)] {
			auto done = std::move(self->done_);  // cancel() may have dropped it
			if (done) done(std::move(self->result_));
		});
	}

	struct ev_loop* loop_;
	HttpsGetRequest request_;
	HttpsGetDone done_;
	core::IoWatcher io_;
	core::TimerWatcher timer_;
	std::shared_ptr<HttpsGet> self_;  // alive until done has run
	std::unique_ptr<Transport> transport_;
	Phase phase_ = Phase::connecting;
	std::string output_;
	std::string response_;
	HttpsGetResult result_;
	bool finished_ = false;
};

HttpsGetHandle& HttpsGetHandle::operator=(HttpsGetHandle&& other) noexcept {
	if (this != &other) {
		cancel();
		get_ = std::move(other.get_);
	}
	return *this;
}

void HttpsGetHandle::cancel() {
	if (auto get = get_.lock()) get->cancel();
	get_.reset();
}

HttpsGetHandle https_get(struct ev_loop* loop, HttpsGetRequest request, HttpsGetDone done) {
	auto get = std::make_shared<HttpsGet>(loop, std::move(request), std::move(done));
	get->start();
	return HttpsGetHandle(get);
}

}  // namespace tern::net
