// A tiny HTTP/1.0-1.1 responder on the loop for the /metrics page: accept,
// read the request head (≤ 8 KiB, ≤ 10 s), answer one request, close. It
// never blocks and holds a bounded number of connections; any other path is
// 404, any method but GET/HEAD 405 (RFC 9110 15.5.5, 15.5.6).
#pragma once
#include <ev.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/watchers.h"
#include "util/unique_fd.h"

namespace tern::metrics {

// The pure part: the response to one request head ("GET /metrics
// HTTP/1.1\r\n..."), `body` called only for a 200. Malformed heads get 400.
std::string http_response(std::string_view request_head, const std::function<std::string()>& body);

// Opens the non-blocking listening socket for "IP:port" or "[IPv6]:port";
// throws std::runtime_error naming the address. Call before dropping
// privileges, like the SMTP listeners.
UniqueFd open_metrics_socket(const std::string& listen);

class HttpResponder {
public:
	static constexpr size_t max_request_head = 8 * 1024;
	static constexpr double request_timeout_s = 10.0;
	static constexpr size_t max_clients = 16;

	// `page` renders the /metrics body.
	HttpResponder(struct ev_loop* loop, UniqueFd listen_fd, std::function<std::string()> page);
	~HttpResponder();
	HttpResponder(const HttpResponder&) = delete;
	HttpResponder& operator=(const HttpResponder&) = delete;

	// Starts accepting. The listener does not keep the loop alive (ev_unref),
	// so ev_run still returns once the server has shut down; a request in
	// progress (≤ 10 s) does.
	void start();
	void stop();

private:
	struct Client {
		UniqueFd fd;
		std::string in;
		std::string out;
		size_t sent = 0;
		// Answer sent and write side shut: reading and discarding until the
		// client closes, so unread request bytes do not turn our close into a
		// reset that destroys the answer in flight (RFC 9112 9.6).
		bool draining = false;
		size_t discarded = 0;
		std::unique_ptr<core::IoWatcher> io;
		std::unique_ptr<core::TimerWatcher> deadline;
	};
	static void accept_trampoline(struct ev_loop*, ev_io* w, int revents);
	void on_accept();
	void on_client_io(uint64_t id);
	void close_client(uint64_t id);
	void respond(Client& c);
	void write_some(uint64_t id);

	struct ev_loop* loop_;
	UniqueFd listen_fd_;
	std::function<std::string()> page_;
	ev_io accept_io_;
	bool accepting_ = false;
	// Out of descriptors: accepting pauses a second instead of spinning on
	// the still-readable listener.
	core::TimerWatcher resume_;
	std::map<uint64_t, std::unique_ptr<Client>> clients_;
	// Closed clients whose watcher callback may still be on the stack; freed
	// at the next event.
	std::vector<std::unique_ptr<Client>> closed_;
	uint64_t next_id_ = 1;
};

}  // namespace tern::metrics
