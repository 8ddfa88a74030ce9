// A loopback authoritative DNS responder for the tests, so the daemon never
// reaches the system resolver. UDP and TCP (RFC 1035 4.2) on 127.0.0.1, the
// same random port for both, answered by its own thread. Over TCP it
// answers one query per connection, then closes (RFC 7766 6.2.1 lets a
// server close an idle connection; a client opens a new one).
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tern::testing {

class DnsServer {
public:
	DnsServer();  // binds and starts answering at once
	~DnsServer();
	DnsServer(const DnsServer&) = delete;
	DnsServer& operator=(const DnsServer&) = delete;

	// Adds a record. type: A, AAAA, MX ("10 mx.example.org"), TXT (the whole
	// text, split into 255-byte strings on the wire), PTR, CNAME, NS. Names
	// are case-insensitive; a trailing dot is optional.
	void add(const std::string& name, const std::string& type, const std::string& value);
	// Removes every record of name (and type, when given).
	void remove(const std::string& name, const std::string& type = "");
	// Queries for this name are never answered (to test timeouts).
	void add_silent_name(const std::string& name);
	// When true no query is answered at all.
	void set_silent(bool silent) { silent_ = silent; }
	// Queries for this name get SERVFAIL.
	void add_servfail_name(const std::string& name);

	// How a UDP reply over the size limit is cut: the answer section left
	// empty, or as many whole records as fit kept (both with TC=1; resolvers
	// send either, RFC 2181 9).
	enum class Truncation { empty_answer, partial_answer };
	// UDP replies longer than max_bytes are truncated (TC=1), as by a
	// recursive resolver capping UDP answers (1232 bytes since the 2020 DNS
	// flag day); 0, the default, never truncates. TCP always answers whole.
	void truncate_udp_over(size_t max_bytes, Truncation how);
	// What a TCP connection gets once its query is read: the answer, nothing
	// (held open), a close, or the answer under another query ID.
	enum class TcpMode { answer, silent, close, wrong_id };
	void set_tcp_mode(TcpMode mode) { tcp_mode_ = mode; }
	// Queries seen over TCP, as "name TYPE" like queries().
	std::vector<std::string> tcp_queries() const;

	uint16_t port() const { return port_; }
	// "127.0.0.1:<port>", as the config's dns.servers wants it.
	std::string address() const;
	// Every query seen so far, as "name TYPE" (name lower case, no trailing dot).
	std::vector<std::string> queries() const;
	void clear_queries();

	void stop();  // joins the thread; also done by the destructor

	// Records used by most tests: the sending domain sender.example with
	// A/MX/SPF, the client's PTR and forward name client.sender.example for
	// 127.0.0.1, and mx.test.example.
	void add_standard_zone();

private:
	// A reply before encoding: its header and question, and its records,
	// each a whole resource record in wire form.
	struct Reply {
		std::string header_and_question;
		std::vector<std::string> records;
	};
	void bind_sockets();
	void serve();
	void serve_udp();
	void serve_tcp();
	// False when the query gets no reply (malformed, or a silent name).
	bool answer(const std::string& query, bool over_tcp, Reply& out);
	// The reply's wire form; a UDP reply over the limit is truncated.
	std::string encode(const Reply& reply, bool over_tcp) const;

	int fd_ = -1;
	int tcp_fd_ = -1;
	uint16_t port_ = 0;
	std::atomic<bool> stop_{false};
	std::atomic<bool> silent_{false};
	std::atomic<TcpMode> tcp_mode_{TcpMode::answer};
	std::atomic<size_t> udp_limit_{0};
	std::atomic<Truncation> truncation_{Truncation::empty_answer};
	// Connections left unanswered (TcpMode::silent), closed by stop().
	std::vector<int> held_connections_;
	std::thread thread_;
	mutable std::mutex mutex_;
	// name → (type, value) records
	std::map<std::string, std::vector<std::pair<std::string, std::string>>> records_;
	std::set<std::string> silent_names_, servfail_names_;
	std::vector<std::string> queries_;
	std::vector<std::string> tcp_queries_;
};

}  // namespace tern::testing
