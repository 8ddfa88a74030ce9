// The daemon's asynchronous DNS resolver: udns 0.4 (UDP with EDNS0) driven
// by the libev loop, implementing mailauth::Resolver, with a TCP fallback
// of its own for truncated replies (udns has none).
//
// Threading: everything runs on the loop thread that owns `loop`.
// Callbacks always run from the loop, never inside query() (a query that
// cannot even be submitted, e.g. a name too long, is answered permerror on
// the next loop iteration), so callers may rely on code after query() running
// first, although the Resolver interface does not promise it.
// A callback may call query() or cancel_owner() (also for its own owner);
// it must not destroy the resolver.
//
// A query goes on the wire inside query(), not on the next loop iteration:
// lookups that depend on each other (the MX check at MAIL FROM asks for
// the MX hosts' addresses after the MX answer) would otherwise each wait
// for the rest of a busy iteration first.
//
// A query asked again (the same name, in any case, and type) while the
// first is still on the wire does not go out a second time: it waits for
// that one's answer (or its timeout), as a caching resolver does with the
// queries of its clients. Only queries in flight are shared; nothing is
// remembered after the answer, so a changed record is seen by the next
// query.
//
// A reply with TC=1 (too large for the server's UDP limit, often 1232
// bytes) is never used, not even its partial answer section (RFC 2181 9):
// the question goes to the server that sent it again over TCP (RFC 1035
// 4.2.2, RFC 7766 5), within the same timeout, while udns asks the other
// servers, if any, over UDP: the first whole answer wins. Every server that
// truncates is asked over TCP, once per query, as soon as its reply comes,
// without waiting for another server's TCP question to end: one that takes
// the connection and never answers would otherwise keep the next one's
// answer from us until the deadline. So a query opens at most one TCP
// connection per configured server. udns itself would drop such a reply
// and end the query with a temporary failure once every server had sent
// one.
//
// Answers: MX hosts and PTR names are lower case without trailing dot (the
// null MX "." gives host ""); each TXT record's strings are joined. Status:
// NXDOMAIN → nxdomain, NOERROR without records → nodata, timeout/SERVFAIL/
// REFUSED/no memory/a TCP fallback that fails → temperror, garbled reply →
// permerror, invalid name → nxdomain.
#pragma once
#include <ev.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "mailauth/resolver.h"
#include "util/ipaddr.h"

struct dns_ctx;
struct dns_query;

namespace tern::net {

class DnsTcpExchange;

class UdnsResolver : public mailauth::Resolver {
public:
	// servers: "ip", "ip:port", "[v6]:port" or a bare IPv6 address; empty
	// means the nameservers of /etc/resolv.conf. timeout_ms bounds one query
	// (a query unanswered after timeout_ms gets temperror; udns retransmits
	// once within that time). Throws std::runtime_error
	// on a bad server address or when the UDP socket cannot be opened.
	UdnsResolver(struct ev_loop* loop, const std::vector<std::string>& servers, int64_t timeout_ms);
	~UdnsResolver() override;
	UdnsResolver(const UdnsResolver&) = delete;
	UdnsResolver& operator=(const UdnsResolver&) = delete;

	void query(uint64_t owner, const std::string& name, mailauth::RrType type, Callback cb) override;
	void cancel_owner(uint64_t owner) override;

	// Number of queries whose callback has not run yet, and of queries kept
	// on the wire only for others that share them (for tests/metrics).
	size_t pending() const { return pending_.size(); }

	// The reverse-lookup name of an address (RFC 1035 3.5, RFC 3596 2.5),
	// without trailing dot: "4.3.2.1.in-addr.arpa", "b.a.9.8....ip6.arpa".
	static std::string reverse_name(const IpAddr& addr);

private:
	// The TCP fallback's question to one server that truncated: its
	// address and the query ID of its reply, and the exchange while it
	// runs (destroyed with the entry, which closes it).
	struct TcpQuestion {
		IpAddr server;
		int port = 0;
		uint16_t query_id = 0;
		std::unique_ptr<DnsTcpExchange> exchange;  // null before it starts and once it failed
		bool failed = false;
		bool waiting() const { return !exchange && !failed; }
	};

	// One query whose callback has not run. udns's `data` points here; an
	// entry is freed only after its udns query ended or was cancelled, so
	// udns never calls back into freed memory.
	struct Pending {
		UdnsResolver* self = nullptr;
		uint64_t id = 0;
		uint64_t owner = 0;
		std::string name;
		mailauth::RrType type = mailauth::RrType::A;
		dns_query* handle = nullptr;  // null when never submitted, or its answer deferred
		Callback cb;
		mailauth::DnsAnswer answer;  // for deferred answers
		// Our own per-query deadline: udns counts whole seconds of time(),
		// too coarse for timeout_ms.
		ev_timer deadline;
		// Sharing a query in flight. On the wire: its in_flight_ key, and
		// the queries waiting for its answer (ids; cancelled ones are gone
		// from pending_ and skipped). Waiting on another: that one's id.
		std::string flight_key;
		std::vector<uint64_t> sharers;
		uint64_t shares = 0;
		// The servers that answered with TC=1, in the order their replies
		// came, each asked over TCP once (RFC 7766 5).
		std::vector<TcpQuestion> tcp;
		Pending();
		~Pending();
	};

	static void on_udns_answer(dns_ctx* ctx, void* result, void* data);
	// udns's debug hook: sees every reply matched to a query (code 0),
	// before udns acts on it; notes the truncated ones.
	static void on_udns_packet(int code, const struct sockaddr* from, unsigned from_len,
	                           const unsigned char* packet, int length, const dns_query* query, void* data);
	static void on_udns_timer_request(dns_ctx* ctx, int timeout, void* data);
	static void on_io(struct ev_loop*, ev_io* w, int revents);
	static void on_timeout_timer(struct ev_loop*, ev_timer* w, int revents);
	static void on_deferred_timer(struct ev_loop*, ev_timer* w, int revents);
	static void on_query_deadline(struct ev_loop*, ev_timer* w, int revents);

	// Queues an answer to be delivered on the next loop iteration.
	void defer(uint64_t id);
	// Sends the queries udns has queued (a new one, retransmissions) and
	// re-arms its timer. An answer udns gives meanwhile (a query it ends
	// at once) is deferred: no callback runs inside query().
	void send_queued();
	// Gives the answer of the query `id` on the wire to it and to the
	// queries that shared it, each taken out just before its callback runs
	// (a callback may cancel the owner of a later one).
	void answer_flight(uint64_t id, const mailauth::DnsAnswer& answer);
	bool has_live_sharers(const Pending& p) const;
	// Cancels the entry's query in udns, if udns still holds it.
	void withdraw_from_udns(Pending& p);
	// Asks the servers that answered truncated their question over TCP;
	// run after udns has read the socket.
	void start_tcp_fallbacks();
	// False when the exchange could not even start.
	bool start_tcp(Pending& p, size_t which);
	// Whether a TCP question of the entry is still to start or running.
	static bool tcp_outstanding(const Pending& p);
	// The TCP question `which` failed: temperror once no server is left to
	// answer, over TCP or over UDP (udns still asking is the UDP one).
	void tcp_failed(Pending& p, size_t which);
	void fail_if_no_server_left(Pending& p);
	void on_tcp_reply(uint64_t id, size_t which, const std::optional<std::string>& reply);

	struct ev_loop* loop_;
	double timeout_seconds_;
	dns_ctx* ctx_ = nullptr;
	ev_io io_watcher_;
	ev_timer timeout_timer_;   // udns's single context timer
	ev_timer deferred_timer_;  // zero-delay timer delivering deferred answers
	bool sending_ = false;     // inside send_queued()
	uint64_t next_id_ = 1;
	// id → query; ids let deferred answers skip entries cancelled meanwhile.
	std::unordered_map<uint64_t, std::unique_ptr<Pending>> pending_;
	std::vector<uint64_t> deferred_;
	// Queries that got a truncated reply during the current dns_ioevent().
	std::vector<uint64_t> truncated_;
	// type and lower-case name → the id of the query on the wire for them.
	std::unordered_map<std::string, uint64_t> in_flight_;
};

}  // namespace tern::net
