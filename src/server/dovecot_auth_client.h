// A non-blocking client of Dovecot's auth-client socket on the loop: one
// connection per SMTP AUTH (or per probe of the mechanism list), driven by
// the pure protocol of sasl/dovecot_auth_protocol.h. Every wait for Dovecot
// has a deadline; a Dovecot that is down, slow or talks nonsense is
// `unavailable`, which the session answers with 454 4.7.0 (RFC 4954 6),
// never 535.
//
// Callbacks are one-shot, one per step; the session wraps them in its
// checked handle (suspend). Owned through a shared_ptr so that a callback
// that drops the last outside reference cannot free the object under its
// own watcher.
#pragma once
#include <ev.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/watchers.h"
#include "sasl/dovecot_auth_protocol.h"
#include "util/unique_fd.h"

namespace tern::server {

class DovecotAuthClient : public std::enable_shared_from_this<DovecotAuthClient> {
public:
	struct Outcome {
		enum class Kind {
			handshake,    // probe(): the mechanism list is known
			challenge,    // `data` goes to the SMTP client in a 334
			success,      // `user` logged in; `data` is a final response when has_data
			failure,      // Dovecot refused the credentials; `reason` for the log
			unsupported,  // Dovecot does not offer the mechanism
			unavailable,  // down, timed out, temporary failure or protocol error; `reason`
		};
		Kind kind = Kind::unavailable;
		std::string data;
		bool has_data = false;
		std::string user;
		std::string reason;
		// Set once the handshake finished in this step: what Dovecot offers.
		std::vector<std::string> mechanisms;
	};
	using Callback = std::function<void(Outcome)>;

	DovecotAuthClient(struct ev_loop* loop, std::string socket_path, double timeout_s);
	~DovecotAuthClient();
	DovecotAuthClient(const DovecotAuthClient&) = delete;
	DovecotAuthClient& operator=(const DovecotAuthClient&) = delete;

	// Connects and sends the request once the handshake is done.
	void start(sasl::dovecot::AuthRequest request, Callback cb);
	// Connects, reads the handshake and reports it (kind handshake).
	void probe(Callback cb);
	// The SMTP client's decoded answer to the last challenge.
	void answer(std::string data, Callback cb);

private:
	void connect_and_send_hello();
	void on_io(int revents);
	void on_timeout();
	bool flush();
	void process_lines();
	void handle(const sasl::dovecot::Event& e);
	void deliver(Outcome o, bool final);
	void fail(std::string reason);
	void close();

	struct ev_loop* loop_;
	std::string socket_path_;
	double timeout_s_;
	UniqueFd fd_;
	core::IoWatcher io_;
	core::TimerWatcher timer_;
	sasl::dovecot::ClientProtocol protocol_;
	std::optional<sasl::dovecot::AuthRequest> request_;  // nullopt: a probe
	bool handshake_reported_ = false;
	bool finished_ = false;
	std::optional<Outcome> failure_;  // set by fail(), delivered by the timer
	std::string in_, out_;
	Callback cb_;
};

}  // namespace tern::server
