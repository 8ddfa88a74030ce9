// UdnsResolver against an in-process loopback DNS responder (never the
// system resolver): answer conversion, status mapping, timeouts,
// cancellation and re-entrant callbacks.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <ev.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "helpers/dns_server.h"
#include "net/dns_tcp.h"
#include "net/udns_resolver.h"

using tern::IpAddr;
using tern::mailauth::DnsAnswer;
using tern::mailauth::DnsStatus;
using tern::mailauth::RrType;
using tern::net::UdnsResolver;
using tern::testing::DnsServer;

namespace {

constexpr uint16_t kTypeA = 1, kTypePtr = 12, kTypeMx = 15, kTypeTxt = 16, kTypeAaaa = 28;

std::string lower(std::string s) {
	for (char& c : s)
		if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
	return s;
}

void put16(std::string& out, unsigned v) {
	out.push_back(char((v >> 8) & 0xff));
	out.push_back(char(v & 0xff));
}

// RFC 1035 3.1 wire name; "" and "." are the root.
std::string wire_name(const std::string& name) {
	std::string out;
	size_t start = 0;
	while (start < name.size()) {
		size_t dot = name.find('.', start);
		if (dot == std::string::npos) dot = name.size();
		out.push_back(char(dot - start));
		out += name.substr(start, dot - start);
		start = dot + 1;
	}
	out.push_back('\0');
	return out;
}

std::string rdata_a(const char* text) {
	in_addr a{};
	inet_pton(AF_INET, text, &a);
	return std::string(reinterpret_cast<const char*>(&a), 4);
}

std::string rdata_aaaa(const char* text) {
	in6_addr a{};
	inet_pton(AF_INET6, text, &a);
	return std::string(reinterpret_cast<const char*>(&a), 16);
}

std::string rdata_mx(unsigned preference, const std::string& host) {
	std::string out;
	put16(out, preference);
	return out + wire_name(host);
}

// One TXT record made of several character-strings (RFC 1035 3.3.14).
std::string rdata_txt(const std::vector<std::string>& strings) {
	std::string out;
	for (const auto& s : strings) {
		out.push_back(char(s.size()));
		out += s;
	}
	return out;
}

// A small authoritative responder on 127.0.0.1, answered by its own thread.
class TestDnsServer {
public:
	TestDnsServer() {
		fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd_ < 0) throw std::runtime_error("socket");
		sockaddr_in sin{};
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) throw std::runtime_error("bind");
		socklen_t len = sizeof(sin);
		getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len);
		port_ = ntohs(sin.sin_port);
	}
	~TestDnsServer() {
		stop_ = true;
		if (thread_.joinable()) thread_.join();
		::close(fd_);
	}
	// Records first, then start().
	void add(const std::string& name, uint16_t type, std::string rdata) {
		zone_[lower(name)].push_back({type, std::move(rdata)});
	}
	void silent(const std::string& name) { silent_.insert(lower(name)); }
	void servfail(const std::string& name) { servfail_.insert(lower(name)); }
	void garbled(const std::string& name) { garbled_.insert(lower(name)); }
	// The first query for this name is dropped, later ones answered.
	void drop_first(const std::string& name) { drop_first_.insert(lower(name)); }
	void start() {
		thread_ = std::thread([this] { serve(); });
	}
	std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
	int queries_seen(const std::string& name) {
		std::lock_guard<std::mutex> lock(mutex_);
		return int(seen_.count(lower(name)));
	}

private:
	void serve() {
		while (!stop_) {
			pollfd pfd{fd_, POLLIN, 0};
			if (poll(&pfd, 1, 20) <= 0) continue;
			char buf[4096];
			sockaddr_in from{};
			socklen_t fromlen = sizeof(from);
			ssize_t n = recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fromlen);
			if (n < 12) continue;
			std::string reply;
			if (answer(std::string(buf, size_t(n)), reply))
				sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), fromlen);
		}
	}

	bool answer(const std::string& q, std::string& out) {
		size_t off = 12;
		std::string name;
		while (off < q.size() && q[off] != 0) {
			size_t len = uint8_t(q[off]);
			if (!name.empty()) name += '.';
			name += q.substr(off + 1, len);
			off += 1 + len;
		}
		off++;
		if (off + 4 > q.size()) return false;
		uint16_t qtype = uint16_t((uint8_t(q[off]) << 8) | uint8_t(q[off + 1]));
		std::string question = q.substr(12, off + 4 - 12);
		name = lower(name);
		{
			std::lock_guard<std::mutex> lock(mutex_);
			seen_.insert(name);
		}
		if (silent_.count(name)) return false;
		if (drop_first_.count(name) && drop_first_.count(name) == 1) {
			drop_first_.insert(name);  // count 2: answer from now on
			return false;
		}
		int rcode = 0;
		std::vector<std::string> records;
		if (servfail_.count(name)) {
			rcode = 2;
		} else if (garbled_.count(name)) {
			rcode = 0;
		} else if (auto it = zone_.find(name); it == zone_.end()) {
			rcode = 3;
		} else {
			for (auto& [type, rdata] : it->second)
				if (type == qtype) records.push_back(rdata);
		}
		out = q.substr(0, 2);
		out.push_back(char(0x84 | (uint8_t(q[2]) & 0x01)));  // QR AA, RD echoed
		out.push_back(char(0x80 | rcode));                   // RA
		put16(out, 1);
		put16(out, garbled_.count(name) ? 1 : unsigned(records.size()));
		put16(out, 0);
		put16(out, 0);
		out += question;
		if (garbled_.count(name)) {
			// An answer RR whose RDLENGTH runs past the end of the packet.
			out += "\xc0\x0c";
			put16(out, qtype);
			put16(out, 1);
			out += std::string("\0\0\x01\x2c", 4);
			put16(out, 200);
			out += "xx";
			return true;
		}
		for (const auto& rdata : records) {
			out += "\xc0\x0c";  // pointer to the question name
			put16(out, qtype);
			put16(out, 1);                          // IN
			out += std::string("\0\0\x01\x2c", 4);  // TTL 300
			put16(out, unsigned(rdata.size()));
			out += rdata;
		}
		return true;
	}

	int fd_ = -1;
	uint16_t port_ = 0;
	std::atomic<bool> stop_{false};
	std::thread thread_;
	std::map<std::string, std::vector<std::pair<uint16_t, std::string>>> zone_;
	std::set<std::string> silent_, servfail_, garbled_;
	std::multiset<std::string> drop_first_;
	std::mutex mutex_;
	std::multiset<std::string> seen_;
};

void fill_zone(TestDnsServer& dns) {
	dns.add("host.test", kTypeA, rdata_a("192.0.2.1"));
	dns.add("host.test", kTypeA, rdata_a("192.0.2.2"));
	dns.add("host.test", kTypeAaaa, rdata_aaaa("2001:db8::1"));
	dns.add("mail.test", kTypeMx, rdata_mx(10, "MX1.Mail.Test"));
	dns.add("mail.test", kTypeMx, rdata_mx(20, "mx2.mail.test"));
	dns.add("nullmx.test", kTypeMx, rdata_mx(0, ""));
	dns.add("txt.test", kTypeTxt, rdata_txt({"v=spf1 ", "ip4:192.0.2.0/24 ", "-all"}));
	dns.add("txt.test", kTypeTxt, rdata_txt({"second record"}));
	dns.add("long.test", kTypeTxt, rdata_txt({std::string(255, 'a'), std::string(100, 'b')}));
	dns.add("1.2.0.192.in-addr.arpa", kTypePtr, wire_name("Client.Host.Test"));
	dns.add("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa", kTypePtr,
	        wire_name("ip6.host.test"));
	dns.silent("silent.test");
	dns.servfail("broken.test");
	dns.garbled("garbled.test");
	dns.add("lossy.test", kTypeA, rdata_a("192.0.2.9"));
	dns.drop_first("lossy.test");
}

void tick(struct ev_loop*, ev_timer*, int) {}

// Runs the loop until `done` holds or `seconds` pass; a ticking timer makes
// sure the deadline is checked even when nothing happens.
bool run_until(struct ev_loop* loop, const std::function<bool()>& done, double seconds) {
	ev_timer ticker;
	ev_timer_init(&ticker, tick, 0.02, 0.02);
	ev_timer_start(loop, &ticker);
	auto start = std::chrono::steady_clock::now();
	while (!done() && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &ticker);
	return done();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
	return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Outcome {
	int calls = 0;
	DnsAnswer answer;
};

std::shared_ptr<Outcome> ask(UdnsResolver& resolver, const std::string& name, RrType type, uint64_t owner) {
	auto out = std::make_shared<Outcome>();
	resolver.query(owner, name, type, [out](const DnsAnswer& a) {
		out->calls++;
		out->answer = a;
	});
	return out;
}

// A resolver asking `Server` (started by the fixture's constructor) on a
// loop of its own.
template <class Server>
struct ResolverFixture {
	Server dns;
	struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
	std::unique_ptr<UdnsResolver> resolver;

	void open_resolver(int64_t timeout_ms) {
		resolver = std::make_unique<UdnsResolver>(loop, std::vector<std::string>{dns.address()}, timeout_ms);
	}
	~ResolverFixture() {
		resolver.reset();
		ev_loop_destroy(loop);
	}
	std::shared_ptr<Outcome> ask(const std::string& name, RrType type, uint64_t owner = 1) {
		return ::ask(*resolver, name, type, owner);
	}
	// Asks and waits for the answer.
	DnsAnswer resolve(const std::string& name, RrType type) {
		auto out = ask(name, type);
		REQUIRE(run_until(
		    loop, [&] { return out->calls > 0; }, 5.0));
		CHECK(out->calls == 1);
		return out->answer;
	}
};

struct Fixture : ResolverFixture<TestDnsServer> {
	explicit Fixture(int64_t timeout_ms = 2000) {
		fill_zone(dns);
		dns.start();
		open_resolver(timeout_ms);
	}
};

// The UDP cap of BIND, Unbound and Knot since the 2020 DNS flag day.
constexpr size_t kFlagDayUdpSize = 1232;

// An apex TXT RRset like a large organisation's: an SPF record among
// dozens of site verification records, several kilobytes in all.
std::vector<std::string> large_txt_set() {
	std::vector<std::string> texts = {"v=spf1 ip4:192.0.2.0/24 include:_spf.big.example -all"};
	for (int i = 0; i < 40; i++)
		texts.push_back("site-verification-" + std::to_string(i) + "=" + std::string(80, char('a' + i % 26)));
	return texts;
}

// The loopback responder of tests/helpers, its UDP replies truncated
// over 1232 bytes.
struct TruncatingFixture : ResolverFixture<DnsServer> {
	explicit TruncatingFixture(DnsServer::Truncation how, int64_t timeout_ms = 2000) {
		for (const auto& text : large_txt_set()) dns.add("big.example", "TXT", text);
		dns.add("small.example", "TXT", "v=spf1 -all");
		dns.truncate_udp_over(kFlagDayUdpSize, how);
		open_resolver(timeout_ms);
	}
	// Runs the loop until the responder has read a query over TCP.
	bool run_until_tcp_query() {
		return run_until(
		    loop, [this] { return !dns.tcp_queries().empty(); }, 3.0);
	}
};

std::vector<std::string> sorted(std::vector<std::string> v) {
	std::sort(v.begin(), v.end());
	return v;
}

// A TXT RRset over 1232 bytes but within EDNS0's 4096: whole over UDP at a
// server that does not cap it.
std::vector<std::string> medium_txt_set() {
	std::vector<std::string> texts;
	for (int i = 0; i < 20; i++)
		texts.push_back("site-verification-" + std::to_string(i) + "=" + std::string(80, char('a' + i)));
	return texts;
}

// Asks `resolver` (driven by `loop`) and waits for the answer, checked whole.
std::shared_ptr<Outcome> ask_whole_txt(struct ev_loop* loop, UdnsResolver& resolver, const std::string& name,
                                       const std::vector<std::string>& texts) {
	auto out = ask(resolver, name, RrType::TXT, 1);
	REQUIRE(run_until(
	    loop, [&] { return out->calls > 0; }, 5.0));
	CHECK(out->answer.status == DnsStatus::ok);
	CHECK(sorted(out->answer.records) == sorted(texts));
	return out;
}

}  // namespace

TEST_CASE("udns resolver: A and AAAA answers as text addresses") {
	Fixture f;
	DnsAnswer a = f.resolve("host.test", RrType::A);
	CHECK(a.status == DnsStatus::ok);
	CHECK(a.records == std::vector<std::string>{"192.0.2.1", "192.0.2.2"});
	DnsAnswer aaaa = f.resolve("host.test.", RrType::AAAA);  // trailing dot accepted
	CHECK(aaaa.status == DnsStatus::ok);
	CHECK(aaaa.records == std::vector<std::string>{"2001:db8::1"});
	CHECK(f.resolver->pending() == 0);
}

TEST_CASE("udns resolver: MX preference and lower-case host, null MX") {
	Fixture f;
	DnsAnswer mx = f.resolve("mail.test", RrType::MX);
	REQUIRE(mx.status == DnsStatus::ok);
	REQUIRE(mx.mx.size() == 2);
	CHECK(mx.mx[0].preference == 10);
	CHECK(mx.mx[0].host == "mx1.mail.test");
	CHECK(mx.mx[1].preference == 20);
	CHECK(mx.mx[1].host == "mx2.mail.test");
	CHECK(mx.records.empty());

	DnsAnswer null_mx = f.resolve("nullmx.test", RrType::MX);  // RFC 7505
	REQUIRE(null_mx.status == DnsStatus::ok);
	REQUIRE(null_mx.mx.size() == 1);
	CHECK(null_mx.mx[0].preference == 0);
	CHECK(null_mx.mx[0].host == "");
}

TEST_CASE("udns resolver: TXT strings of one record are joined (RFC 7208 3.3)") {
	Fixture f;
	DnsAnswer txt = f.resolve("txt.test", RrType::TXT);
	REQUIRE(txt.status == DnsStatus::ok);
	CHECK(txt.records == std::vector<std::string>{"v=spf1 ip4:192.0.2.0/24 -all", "second record"});
	DnsAnswer long_txt = f.resolve("long.test", RrType::TXT);
	REQUIRE(long_txt.records.size() == 1);
	CHECK(long_txt.records[0] == std::string(255, 'a') + std::string(100, 'b'));
}

TEST_CASE("udns resolver: PTR on reverse names") {
	Fixture f;
	std::string v4 = UdnsResolver::reverse_name(*IpAddr::parse("192.0.2.1"));
	CHECK(v4 == "1.2.0.192.in-addr.arpa");
	DnsAnswer ptr = f.resolve(v4, RrType::PTR);
	CHECK(ptr.status == DnsStatus::ok);
	CHECK(ptr.records == std::vector<std::string>{"client.host.test"});

	std::string v6 = UdnsResolver::reverse_name(*IpAddr::parse("::1"));
	CHECK(v6 == "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
	DnsAnswer ptr6 = f.resolve(v6, RrType::PTR);
	CHECK(ptr6.status == DnsStatus::ok);
	CHECK(ptr6.records == std::vector<std::string>{"ip6.host.test"});
}

TEST_CASE("udns resolver: reverse_name nibbles for IPv6") {
	CHECK(UdnsResolver::reverse_name(*IpAddr::parse("2001:db8::abcd")) ==
	      "d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	CHECK(UdnsResolver::reverse_name(*IpAddr::parse("10.0.0.255")) == "255.0.0.10.in-addr.arpa");
}

TEST_CASE("udns resolver: status mapping") {
	Fixture f;
	DnsAnswer nx = f.resolve("missing.test", RrType::A);
	CHECK(nx.status == DnsStatus::nxdomain);
	CHECK(nx.not_found());
	CHECK(nx.records.empty());

	DnsAnswer nodata = f.resolve("host.test", RrType::MX);
	CHECK(nodata.status == DnsStatus::nodata);
	CHECK(nodata.not_found());

	DnsAnswer servfail = f.resolve("broken.test", RrType::TXT);
	CHECK(servfail.status == DnsStatus::temperror);

	DnsAnswer garbled = f.resolve("garbled.test", RrType::A);
	CHECK(garbled.status == DnsStatus::permerror);
}

TEST_CASE("udns resolver: an invalid name does not exist (nxdomain), delivered from the loop") {
	Fixture f;
	std::string long_label(64, 'x');  // RFC 1035 2.3.4: labels are at most 63 octets
	auto out = f.ask(long_label + ".test", RrType::A);
	CHECK(out->calls == 0);  // not inside query()
	REQUIRE(run_until(
	    f.loop, [&] { return out->calls > 0; }, 2.0));
	CHECK(out->calls == 1);
	CHECK(out->answer.status == DnsStatus::nxdomain);
	CHECK(out->answer.not_found());

	std::string long_name;
	for (int i = 0; i < 30; i++) long_name += "abcdefghi.";  // 300 octets > 255
	auto out2 = f.ask(long_name + "test", RrType::TXT);
	REQUIRE(run_until(
	    f.loop, [&] { return out2->calls > 0; }, 2.0));
	CHECK(out2->answer.status == DnsStatus::nxdomain);
	CHECK(f.dns.queries_seen(long_label + ".test") == 0);
}

TEST_CASE("udns resolver: a silent server times out as temperror; other queries go on") {
	Fixture f(1000);
	auto start = std::chrono::steady_clock::now();
	auto silent = f.ask("silent.test", RrType::TXT);
	auto other = f.ask("host.test", RrType::A);
	REQUIRE(run_until(
	    f.loop, [&] { return other->calls > 0; }, 2.0));
	CHECK(seconds_since(start) < 0.9);
	CHECK(other->answer.status == DnsStatus::ok);
	CHECK(silent->calls == 0);

	REQUIRE(run_until(
	    f.loop, [&] { return silent->calls > 0; }, 4.0));
	double took = seconds_since(start);
	CHECK(took >= 0.95);  // timeout_ms, not whole seconds of udns
	CHECK(took < 1.5);
	CHECK(silent->calls == 1);
	CHECK(silent->answer.status == DnsStatus::temperror);
	CHECK(f.resolver->pending() == 0);
}

TEST_CASE("udns resolver: a lost packet is retransmitted within the timeout") {
	Fixture f(4000);
	auto start = std::chrono::steady_clock::now();
	auto out = f.ask("lossy.test", RrType::A);
	REQUIRE(run_until(
	    f.loop, [&] { return out->calls > 0; }, 5.0));
	CHECK(out->answer.status == DnsStatus::ok);
	CHECK(out->answer.records == std::vector<std::string>{"192.0.2.9"});
	CHECK(seconds_since(start) < 3.5);
	CHECK(f.dns.queries_seen("lossy.test") == 2);
}

TEST_CASE("udns resolver: a query is on the wire when query() returns, before the loop runs") {
	Fixture f;
	auto out = f.ask("host.test", RrType::A);
	// The responder's thread sees it while our loop has not turned once.
	auto start = std::chrono::steady_clock::now();
	while (f.dns.queries_seen("host.test") == 0 && seconds_since(start) < 2.0)
		std::this_thread::sleep_for(std::chrono::milliseconds(5));
	CHECK(f.dns.queries_seen("host.test") == 1);
	CHECK(out->calls == 0);  // the answer is read by the loop
	REQUIRE(run_until(
	    f.loop, [&] { return out->calls > 0; }, 5.0));
	CHECK(out->answer.status == DnsStatus::ok);
	CHECK(out->calls == 1);
}

TEST_CASE("udns resolver: a send that fails at once answers from the loop, also the queries sharing it") {
	// Broadcast without SO_BROADCAST: sendto(2) fails with EACCES at once.
	struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
	{
		UdnsResolver resolver(loop, {"255.255.255.255:53"}, 1000);
		std::vector<DnsAnswer> answers;
		auto record = [&](const DnsAnswer& a) { answers.push_back(a); };
		resolver.query(1, "host.test", RrType::A, record);
		CHECK(answers.empty());                             // never inside query()
		resolver.query(2, "HOST.test", RrType::A, record);  // shares the first
		resolver.cancel_owner(1);                           // the one on the wire goes; the sharer still waits
		CHECK(answers.empty());
		REQUIRE(run_until(
		    loop, [&] { return !answers.empty(); }, 3.0));
		CHECK(answers.size() == 1);
		CHECK(answers[0].status == DnsStatus::temperror);
		CHECK(resolver.pending() == 0);
	}
	ev_loop_destroy(loop);
}

TEST_CASE("udns resolver: cancel_owner drops only that owner's queries") {
	Fixture f(1000);
	auto a1 = f.ask("host.test", RrType::A, 7);
	auto a2 = f.ask("silent.test", RrType::A, 7);
	auto a3 = f.ask("x" + std::string(70, 'y') + ".test", RrType::A, 7);  // deferred permerror
	auto b1 = f.ask("mail.test", RrType::MX, 8);
	CHECK(f.resolver->pending() == 4);
	f.resolver->cancel_owner(7);
	CHECK(f.resolver->pending() == 1);
	REQUIRE(run_until(
	    f.loop, [&] { return b1->calls > 0; }, 2.0));
	CHECK(b1->answer.status == DnsStatus::ok);
	// Beyond the silent query's timeout: still no callback for owner 7.
	run_until(
	    f.loop, [] { return false; }, 2.2);
	CHECK(a1->calls == 0);
	CHECK(a2->calls == 0);
	CHECK(a3->calls == 0);
	CHECK(f.resolver->pending() == 0);
	f.resolver->cancel_owner(7);  // nothing left: harmless
}

TEST_CASE("udns resolver: callbacks may query and cancel") {
	Fixture f;
	int chained_calls = 0;
	DnsAnswer chained;
	auto victim = f.ask("silent.test", RrType::A, 3);
	int first_calls = 0;
	f.resolver->query(2, "mail.test", RrType::MX, [&](const DnsAnswer& a) {
		first_calls++;
		REQUIRE(a.mx.size() == 2);
		f.resolver->cancel_owner(2);  // its own owner: nothing else pending
		f.resolver->cancel_owner(3);  // another owner's pending query
		f.resolver->query(2, a.mx[0].host == "mx1.mail.test" ? "host.test" : "missing.test", RrType::A,
		                  [&](const DnsAnswer& b) {
					  chained_calls++;
					  chained = b;
				  });
	});
	REQUIRE(run_until(
	    f.loop, [&] { return chained_calls > 0; }, 3.0));
	CHECK(first_calls == 1);
	CHECK(chained_calls == 1);
	CHECK(chained.records == std::vector<std::string>{"192.0.2.1", "192.0.2.2"});
	CHECK(victim->calls == 0);
	CHECK(f.resolver->pending() == 0);
}

TEST_CASE("udns resolver: a query asked again while the first is on the wire shares its answer") {
	Fixture f;
	auto first = f.ask("host.test", RrType::A, 1);
	auto again = f.ask("HOST.Test.", RrType::A, 2);  // any case, trailing dot
	auto other_type = f.ask("host.test", RrType::AAAA, 3);
	REQUIRE(run_until(
	    f.loop, [&] { return first->calls > 0 && again->calls > 0 && other_type->calls > 0; }, 3.0));
	CHECK(first->calls == 1);
	CHECK(again->calls == 1);
	CHECK(again->answer.records == std::vector<std::string>{"192.0.2.1", "192.0.2.2"});
	CHECK(first->answer.records == again->answer.records);
	CHECK(other_type->answer.records == std::vector<std::string>{"2001:db8::1"});
	// One query for A, one for AAAA.
	CHECK(f.dns.queries_seen("host.test") == 2);
	// Nothing is remembered after the answer: the next one goes out.
	CHECK(f.resolve("host.test", RrType::A).status == DnsStatus::ok);
	CHECK(f.dns.queries_seen("host.test") == 3);
	CHECK(f.resolver->pending() == 0);
}

namespace {

// Owners `first` and `first + 1` ask for the same name; the first, whose
// query went on the wire, is cancelled at once.
std::pair<std::shared_ptr<Outcome>, std::shared_ptr<Outcome>>
share_then_cancel_first(Fixture& f, const std::string& name, RrType type, uint64_t first) {
	auto gone = f.ask(name, type, first);
	auto stays = f.ask(name, type, first + 1);
	f.resolver->cancel_owner(first);
	return {gone, stays};
}

}  // namespace

TEST_CASE("udns resolver: cancelling the owner of a shared query leaves the others their answer") {
	Fixture f(1000);
	// The owner of the query on the wire goes; the one sharing it stays.
	auto [gone, stays] = share_then_cancel_first(f, "mail.test", RrType::MX, 1);
	REQUIRE(run_until(
	    f.loop, [&] { return stays->calls > 0; }, 3.0));
	CHECK(stays->answer.status == DnsStatus::ok);
	CHECK(stays->answer.mx.size() == 2);
	CHECK(gone->calls == 0);
	CHECK(f.dns.queries_seen("mail.test") == 1);

	// A timeout reaches every query that shares the silent one.
	auto [silent_gone, silent_stays] = share_then_cancel_first(f, "silent.test", RrType::TXT, 3);
	REQUIRE(run_until(
	    f.loop, [&] { return silent_stays->calls > 0; }, 3.0));
	CHECK(silent_stays->answer.status == DnsStatus::temperror);
	CHECK(silent_gone->calls == 0);

	// Every query of the name cancelled: none is left pending.
	auto c1 = f.ask("silent.test", RrType::TXT, 5);
	auto c2 = f.ask("silent.test", RrType::TXT, 6);
	f.resolver->cancel_owner(6);
	f.resolver->cancel_owner(5);
	CHECK(f.resolver->pending() == 0);
	run_until(
	    f.loop, [] { return false; }, 1.3);
	CHECK(c1->calls == 0);
	CHECK(c2->calls == 0);
}

TEST_CASE("udns resolver: a shared answer's callback may cancel a query waiting for the same answer") {
	Fixture f;
	int first_calls = 0;
	f.resolver->query(1, "host.test", RrType::A, [&](const DnsAnswer&) {
		first_calls++;
		f.resolver->cancel_owner(3);
	});
	auto second = f.ask("host.test", RrType::A, 2);
	auto third = f.ask("host.test", RrType::A, 3);
	REQUIRE(run_until(
	    f.loop, [&] { return first_calls > 0 && second->calls > 0; }, 3.0));
	run_until(
	    f.loop, [] { return false; }, 0.2);
	CHECK(first_calls == 1);
	CHECK(second->calls == 1);
	CHECK(third->calls == 0);
	CHECK(f.resolver->pending() == 0);
}

TEST_CASE("udns resolver: the loop ends once no query is pending") {
	Fixture f;
	auto out = f.ask("host.test", RrType::AAAA);
	// The resolver's socket watcher must not keep ev_run alive on its own;
	// a pending query does (through the udns timer). The guard breaks a
	// hanging loop without keeping it alive itself.
	ev_timer guard;
	ev_timer_init(
	    &guard, [](struct ev_loop* l, ev_timer*, int) { ev_break(l, EVBREAK_ALL); }, 5.0, 0.);
	ev_timer_start(f.loop, &guard);
	ev_unref(f.loop);
	auto start = std::chrono::steady_clock::now();
	ev_run(f.loop, 0);
	CHECK(seconds_since(start) < 4.0);
	if (ev_is_active(&guard)) {
		ev_ref(f.loop);
		ev_timer_stop(f.loop, &guard);
	}
	CHECK(out->calls == 1);
	CHECK(out->answer.records == std::vector<std::string>{"2001:db8::1"});
}

TEST_CASE("udns resolver: destroying with pending queries runs no callback") {
	auto out = std::make_shared<Outcome>();
	{
		Fixture f;
		out = f.ask("silent.test", RrType::A);
		run_until(
		    f.loop, [] { return false; }, 0.1);  // sent
		auto deferred = f.ask(std::string(70, 'z') + ".test", RrType::A);
		CHECK(f.resolver->pending() == 2);
		f.resolver.reset();
		CHECK(deferred->calls == 0);
	}
	CHECK(out->calls == 0);
}

TEST_CASE("udns resolver: server address forms") {
	struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
	CHECK_NOTHROW(UdnsResolver(loop, {"127.0.0.1"}, 1000));
	CHECK_NOTHROW(UdnsResolver(loop, {}, 1000));  // /etc/resolv.conf; nothing is queried
	CHECK_NOTHROW(UdnsResolver(loop, {"127.0.0.1:5353", "192.0.2.53:53"}, 5000));
	int v6 = ::socket(AF_INET6, SOCK_DGRAM, 0);
	if (v6 >= 0) {  // IPv6 servers need an IPv6 socket
		::close(v6);
		CHECK_NOTHROW(UdnsResolver(loop, {"127.0.0.1:5353", "[::1]:53", "::1"}, 5000));
	}
	CHECK_THROWS_AS(UdnsResolver(loop, {"not-an-ip"}, 1000), std::runtime_error);
	CHECK_THROWS_AS(UdnsResolver(loop, {"127.0.0.1:99999"}, 1000), std::runtime_error);
	CHECK_THROWS_AS(UdnsResolver(loop, {"[::1"}, 1000), std::runtime_error);
	CHECK_THROWS_AS(UdnsResolver(loop, {"127.0.0.1:"}, 1000), std::runtime_error);
	ev_loop_destroy(loop);
}

// Truncated UDP answers: a reply with TC=1 is asked again over TCP (RFC 1035
// 4.2.2, RFC 7766 5), and a truncated answer is never used as the whole
// RRset (RFC 2181 9). Against the loopback responder of tests/helpers, whose
// UDP replies over a size limit come back truncated.

TEST_CASE("udns resolver: a truncated UDP answer is asked again over TCP, whole (RFC 7766 5)") {
	for (auto how : {DnsServer::Truncation::empty_answer, DnsServer::Truncation::partial_answer}) {
		CAPTURE(int(how));
		TruncatingFixture f(how);
		DnsAnswer answer = f.resolve("big.example", RrType::TXT);
		CHECK(answer.status == DnsStatus::ok);
		CHECK(sorted(answer.records) == sorted(large_txt_set()));
		CHECK(f.dns.tcp_queries() == std::vector<std::string>{"big.example TXT"});
	}
}

TEST_CASE("udns resolver: an answer that fits in UDP does not go over TCP") {
	TruncatingFixture f(DnsServer::Truncation::partial_answer);
	DnsAnswer answer = f.resolve("small.example", RrType::TXT);
	CHECK(answer.status == DnsStatus::ok);
	CHECK(answer.records == std::vector<std::string>{"v=spf1 -all"});
	CHECK(f.dns.tcp_queries().empty());
}

TEST_CASE("udns resolver: a truncated A RRset arrives whole over TCP") {
	TruncatingFixture f(DnsServer::Truncation::partial_answer);
	std::vector<std::string> addresses;
	for (int i = 1; i <= 80; i++) {
		addresses.push_back("192.0.2." + std::to_string(i));
		f.dns.add("many.example", "A", addresses.back());
	}
	DnsAnswer answer = f.resolve("many.example", RrType::A);
	CHECK(answer.status == DnsStatus::ok);
	CHECK(sorted(answer.records) == sorted(addresses));
}

TEST_CASE("udns resolver: queries sharing a truncated one get the TCP answer; one TCP query") {
	TruncatingFixture f(DnsServer::Truncation::empty_answer);
	auto first = f.ask("big.example", RrType::TXT, 1);
	DnsAnswer second = f.resolve("BIG.example.", RrType::TXT);
	REQUIRE(first->calls == 1);
	CHECK(first->answer.records.size() == large_txt_set().size());
	CHECK(second.records == first->answer.records);
	CHECK(f.dns.tcp_queries().size() == 1);
}

TEST_CASE("udns resolver: a TCP server that never answers ends in temperror within the timeout") {
	TruncatingFixture f(DnsServer::Truncation::partial_answer, 600);
	f.dns.set_tcp_mode(DnsServer::TcpMode::silent);
	auto start = std::chrono::steady_clock::now();
	DnsAnswer answer = f.resolve("big.example", RrType::TXT);
	CHECK(answer.status == DnsStatus::temperror);
	CHECK(answer.records.empty());
	CHECK(seconds_since(start) >= 0.5);
	CHECK(seconds_since(start) < 1.5);
	CHECK(f.dns.tcp_queries().size() == 1);
	CHECK(f.resolver->pending() == 0);
}

TEST_CASE("udns resolver: a TCP reply closed early or for another query ID is a temperror, never the UDP part") {
	for (auto mode : {DnsServer::TcpMode::close, DnsServer::TcpMode::wrong_id}) {
		CAPTURE(int(mode));
		TruncatingFixture f(DnsServer::Truncation::partial_answer);
		f.dns.set_tcp_mode(mode);
		DnsAnswer answer = f.resolve("big.example", RrType::TXT);
		CHECK(answer.status == DnsStatus::temperror);
		CHECK(answer.records.empty());
		CHECK(f.dns.tcp_queries().size() == 1);
	}
}

// Two servers: the first truncates and its TCP fails or hangs; udns
// meanwhile asks the second over UDP, whose whole answer is the one given.
TEST_CASE("udns resolver: a TCP question that fails leaves the answer to the other servers") {
	for (auto mode : {DnsServer::TcpMode::close, DnsServer::TcpMode::wrong_id, DnsServer::TcpMode::silent}) {
		CAPTURE(int(mode));
		DnsServer truncating;
		DnsServer whole;
		const std::vector<std::string> texts = medium_txt_set();
		for (const auto& text : texts) {
			truncating.add("mid.example", "TXT", text);
			whole.add("mid.example", "TXT", text);
		}
		truncating.truncate_udp_over(kFlagDayUdpSize, DnsServer::Truncation::partial_answer);
		truncating.set_tcp_mode(mode);
		struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
		{
			UdnsResolver resolver(loop, {truncating.address(), whole.address()}, 3000);
			ask_whole_txt(loop, resolver, "mid.example", texts);
			// The second server's UDP answer may come before the first
			// server has read the TCP question (whose exchange then closes):
			// at most one, however it went.
			CHECK(truncating.tcp_queries().size() <= 1);
			CHECK(whole.queries() == std::vector<std::string>{"mid.example TXT"});
			CHECK(resolver.pending() == 0);
		}
		ev_loop_destroy(loop);
	}
}

// Two servers that both truncate: the first fails over TCP (closes, answers
// for another query ID, or holds the connection without a word), the
// second answers whole over TCP. Each server that truncated is asked over
// TCP (RFC 7766 5), once; the second server's answer is the one given. The
// order of the first server's TCP failure and the second server's
// truncated UDP reply is left to the scheduler: either way the second
// server is asked, so nothing here depends on it.
TEST_CASE("udns resolver: every server that truncated is asked over TCP; one failing leaves the answer to the next") {
	for (auto mode : {DnsServer::TcpMode::close, DnsServer::TcpMode::wrong_id, DnsServer::TcpMode::silent}) {
		CAPTURE(int(mode));
		DnsServer failing;
		DnsServer answering;
		const std::vector<std::string> texts = medium_txt_set();
		for (DnsServer* server : {&failing, &answering}) {
			for (const auto& text : texts) server->add("mid.example", "TXT", text);
			server->truncate_udp_over(kFlagDayUdpSize, DnsServer::Truncation::partial_answer);
		}
		failing.set_tcp_mode(mode);
		struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
		{
			UdnsResolver resolver(loop, {failing.address(), answering.address()}, 2000);
			auto start = std::chrono::steady_clock::now();
			ask_whole_txt(loop, resolver, "mid.example", texts);
			// Not the query's timeout: the answer did not wait for the
			// first server's silence to end.
			CHECK(seconds_since(start) < 1.0);
			CHECK(answering.tcp_queries() == std::vector<std::string>{"mid.example TXT"});
			// The second server's answer may come before the first has read
			// its TCP question (whose exchange then closes): at most one.
			CHECK(failing.tcp_queries().size() <= 1);
			CHECK(resolver.pending() == 0);
		}
		ev_loop_destroy(loop);
	}
}

// Two servers: the first truncates and answers whole over TCP while the
// second, asked over UDP meanwhile, stays silent. The TCP answer is given,
// and udns's query is withdrawn with it: nothing goes to the second server
// again (its retransmission would reach an entry already freed).
TEST_CASE("udns resolver: a TCP answer given while udns still asks another server withdraws its query") {
	DnsServer truncating;
	DnsServer silent;
	silent.set_silent(true);
	const std::vector<std::string> texts = medium_txt_set();
	for (const auto& text : texts) truncating.add("mid.example", "TXT", text);
	truncating.truncate_udp_over(kFlagDayUdpSize, DnsServer::Truncation::empty_answer);
	struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
	{
		UdnsResolver resolver(loop, {truncating.address(), silent.address()}, 1000);
		auto out = ask_whole_txt(loop, resolver, "mid.example", texts);
		CHECK(resolver.pending() == 0);
		// Past udns's retransmission (whole seconds, 1 here).
		run_until(
		    loop, [] { return false; }, 2.5);
		CHECK(silent.queries().size() <= 1);
		CHECK(out->calls == 1);
	}
	ev_loop_destroy(loop);
}

TEST_CASE("udns resolver: a query cancelled while over TCP never calls back") {
	TruncatingFixture f(DnsServer::Truncation::empty_answer);
	f.dns.set_tcp_mode(DnsServer::TcpMode::silent);
	auto cancelled = f.ask("big.example", RrType::TXT, 1);
	REQUIRE(f.run_until_tcp_query());
	f.resolver->cancel_owner(1);
	CHECK(f.resolver->pending() == 0);
	run_until(
	    f.loop, [] { return false; }, 0.3);
	CHECK(cancelled->calls == 0);
}

TEST_CASE("udns resolver: destroying the resolver while a TCP query is out runs no callback") {
	TruncatingFixture f(DnsServer::Truncation::empty_answer);
	f.dns.set_tcp_mode(DnsServer::TcpMode::silent);
	auto out = f.ask("big.example", RrType::TXT);
	REQUIRE(f.run_until_tcp_query());
	REQUIRE(f.resolver->pending() == 1);
	f.resolver.reset();
	ev_run(f.loop, EVRUN_NOWAIT);
	CHECK(out->calls == 0);
}

TEST_CASE("dns over tcp: the query is framed with its length (RFC 1035 4.2.2)") {
	std::string framed = tern::net::dns_tcp_query("Big.Example.", 16, 0xabcd);
	std::string message = std::string("\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12) +
	    std::string("\x03"
	                "Big\x07"
	                "Example\x00",
	                13) +
	    std::string("\x00\x10\x00\x01", 4);
	CHECK(framed == std::string("\x00", 1) + char(message.size()) + message);
	CHECK(tern::net::dns_tcp_query("bad..name", 16, 1).empty());
	CHECK(tern::net::dns_tcp_query(std::string(64, 'a') + ".example", 16, 1).empty());
}

TEST_CASE("dns over tcp: a framed message gathered from pieces; bytes after it are not kept") {
	tern::net::DnsTcpFrame frame;
	CHECK_FALSE(frame.add("\x00", 1));
	CHECK_FALSE(
	    frame.add("\x05"
	              "ab",
	              3));
	CHECK_FALSE(frame.complete());
	CHECK(frame.add("cdeXYZ", 6));
	CHECK(frame.message() == "abcde");
	CHECK(frame.add("more", 4));
	CHECK(frame.message() == "abcde");

	tern::net::DnsTcpFrame largest;
	std::string body(65535, 'x');
	CHECK_FALSE(largest.add("\xff\xff", 2));
	CHECK(largest.add(body.data(), body.size()));
	CHECK(largest.message().size() == 65535);
}
