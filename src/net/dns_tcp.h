// DNS over TCP for the answers UDP cannot carry: a server that sets TC=1
// on a reply too large for UDP is asked the same question again over TCP
// (RFC 1035 4.2.2, RFC 7766 5). udns speaks UDP only; UdnsResolver uses
// this for its fallback and parses the reply with udns's own parsers.
//
// One query per connection, closed after its reply (RFC 7766 6.2.1 allows
// it; the fallback is rare enough that reusing connections buys nothing).
// Nothing here blocks: the exchange runs on the libev loop.
#pragma once
#include <ev.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "util/ipaddr.h"

namespace tern::net {

class ByteStream;

// The query message framed for TCP: a two-byte length, then the header
// (`id`, RD set, one question) and the question for `name` in class IN
// (RFC 1035 4.1.1, 4.1.2, 4.2.2). Empty when `name` is no valid domain
// name. No EDNS0 OPT record: over TCP the message size is not limited by it.
std::string dns_tcp_query(const std::string& name, uint16_t qtype, uint16_t id);

// Gathers one length-prefixed message from a TCP stream (RFC 1035 4.2.2).
// The length field is 16 bits, so nothing over 2 + 65535 bytes is kept.
class DnsTcpFrame {
public:
	// Takes bytes as they were read; bytes past the end of the message are
	// not kept (one message per connection). Returns complete().
	bool add(const char* data, std::size_t size);
	bool complete() const;
	// The message without its length field; only when complete().
	std::string message() const { return buffer_.substr(2); }

private:
	std::size_t wanted() const;  // bytes still missing
	std::string buffer_;
};

// One query over one TCP connection: connect, write, read the reply. The
// owner bounds it in time (it destroys the exchange when its deadline
// passes); destroying it at any point stops its watcher and closes the
// socket, so nothing runs afterwards.
class DnsTcpExchange {
public:
	// The reply message, or nullopt when the connection failed or closed
	// before a whole message arrived. It runs from the loop, last: it may
	// destroy the exchange.
	using Done = std::function<void(std::optional<std::string> reply)>;

	DnsTcpExchange(struct ev_loop* loop, Done done);
	~DnsTcpExchange();
	DnsTcpExchange(const DnsTcpExchange&) = delete;
	DnsTcpExchange& operator=(const DnsTcpExchange&) = delete;

	// Connects without blocking and sends `framed_query` once connected.
	// False when not even the connection could start (then `done` never
	// runs).
	bool start(const IpAddr& server, int port, std::string framed_query);

private:
	static void on_ready(struct ev_loop*, ev_io* w, int revents);
	void on_connected();
	void write_query();
	void read_reply();
	// Stops the exchange and hands `reply` to `done`: the last step.
	void finish(std::optional<std::string> reply);

	enum class Stage { connecting, writing, reading };
	struct ev_loop* loop_;
	Done done_;
	std::unique_ptr<ByteStream> stream_;
	ev_io watcher_;
	Stage stage_ = Stage::connecting;
	std::string query_;
	std::size_t written_ = 0;
	DnsTcpFrame reply_;
};

}  // namespace tern::net
