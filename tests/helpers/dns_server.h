// A loopback authoritative DNS responder for the black-box tests, so the
// daemon never reaches the system resolver. UDP on 127.0.0.1, random port,
// answered by its own thread.
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
	void serve();
	std::string answer(const std::string& query, bool& reply);

	int fd_ = -1;
	uint16_t port_ = 0;
	std::atomic<bool> stop_{false};
	std::atomic<bool> silent_{false};
	std::thread thread_;
	mutable std::mutex mutex_;
	// name → (type, value) records
	std::map<std::string, std::vector<std::pair<std::string, std::string>>> records_;
	std::set<std::string> silent_names_, servfail_names_;
	std::vector<std::string> queries_;
};

}  // namespace tern::testing
