// A tiny HTTP/1.0-1.1 responder on the loop for the /metrics page: accept,
// read the request head (≤ 8 KiB, ≤ 10 s), answer one request, close. It
// never blocks and holds a bounded number of connections; any other path is
// 404, any method but GET/HEAD 405 (RFC 9110 15.5.5, 15.5.6).
#pragma once
#include <ev.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "server/local_clients.h"
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

	// Starts accepting.
	void start();
	// Stops accepting and closes the socket; requests in progress finish.
	void stop();
	size_t clients() const { return clients_.size(); }

	struct Client;

private:
	void on_io(Client& c);
	void read_request(Client& c);
	void discard_input(Client& c);
	void write_some(Client& c);

	std::function<std::string()> page_;
	// The accept loop, the client table and the deadlines, shared with the
	// control socket and sendmail.sock; events reach a client only through
	// it (doc/design.md "one lifetime rule").
	server::LocalClients<Client> clients_;
};

}  // namespace tern::metrics
