#include "util/log.h"
#include "mailauth/iprev.h"
#include "net/udns_resolver.h"
#include "net/dns_tcp.h"
#include "util/strings.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <udns.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace tern::net {

namespace {
// Answers reach the checks through udns's C code (and libev's): no exception
// may unwind through them.
void deliver_answer(const mailauth::Resolver::Callback& cb, const mailauth::DnsAnswer& answer) {
	try {
		cb(answer);
	} catch (const std::exception& e) {
		log::error("unhandled exception in a dns callback", {{"error", e.what()}});
	}
}
}  // namespace

using mailauth::DnsAnswer;
using mailauth::DnsStatus;
using mailauth::RrType;

namespace {

constexpr double kTimerSlack = 0.05;  // seconds

// udns only copies an initialised context (dns_new asserts it), and the
// library's default context is the only template there is. Reading
// /etc/resolv.conf into it once is harmless: no socket is opened for it.
void init_default_context_once() {
	static std::once_flag once;
	std::call_once(once, [] { dns_init(nullptr, 0); });
}

union ServerAddress {
	sockaddr sa;
	sockaddr_in sin;
	sockaddr_in6 sin6;
};

// "ip", "ip:port", "[v6]:port", "[v6]" or a bare IPv6 address.
bool parse_server(const std::string& text, ServerAddress& out) {
	std::string host = text;
	std::string port_text;
	if (!text.empty() && text.front() == '[') {
		size_t close = text.find(']');
		if (close == std::string::npos) return false;
		host = text.substr(1, close - 1);
		std::string rest = text.substr(close + 1);
		if (!rest.empty()) {
			if (rest.front() != ':' || rest.size() == 1) return false;
			port_text = rest.substr(1);
		}
	} else if (std::count(text.begin(), text.end(), ':') == 1) {
		size_t colon = text.find(':');
		host = text.substr(0, colon);
		port_text = text.substr(colon + 1);
		if (port_text.empty()) return false;
	}
	int port = 53;
	if (!port_text.empty()) {
		if (port_text.size() > 5 ||
		    !std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
			return false;
		port = std::stoi(port_text);
		if (port < 1 || port > 65535) return false;
	}
	std::memset(&out, 0, sizeof(out));
	if (inet_pton(AF_INET, host.c_str(), &out.sin.sin_addr) == 1) {
		out.sin.sin_family = AF_INET;
		out.sin.sin_port = htons(uint16_t(port));
		return true;
	}
	if (inet_pton(AF_INET6, host.c_str(), &out.sin6.sin6_addr) == 1) {
		out.sin6.sin6_family = AF_INET6;
		out.sin6.sin6_port = htons(uint16_t(port));
		return true;
	}
	return false;
}

DnsStatus status_from_udns(int code) {
	switch (code) {
	case DNS_E_NXDOMAIN: return DnsStatus::nxdomain;
	case DNS_E_NODATA: return DnsStatus::nodata;
	// A name no zone can hold (a label over 63 octets, over 255 in all, an
	// empty label; RFC 1035 2.3.4) does not exist: not found, never a
	// failure a sender could use to turn a check into a temporary error.
	case DNS_E_BADQUERY: return DnsStatus::nxdomain;
	case DNS_E_PROTOCOL: return DnsStatus::permerror;
	case DNS_E_TEMPFAIL:  // timeout, SERVFAIL, REFUSED, truncated reply
	case DNS_E_NOMEM:
	default: return DnsStatus::temperror;
	}
}

// Converts a parsed udns RRset into a DnsAnswer. An RRset without records
// (e.g. only a CNAME came back) counts as no data.
DnsAnswer convert(RrType type, void* result) {
	DnsAnswer answer;
	answer.status = DnsStatus::ok;
	char text[INET6_ADDRSTRLEN];
	switch (type) {
	case RrType::A: {
		auto* rr = static_cast<dns_rr_a4*>(result);
		for (int i = 0; i < rr->dnsa4_nrr; i++)
			if (inet_ntop(AF_INET, &rr->dnsa4_addr[i], text, sizeof(text)))
				answer.records.emplace_back(text);
		break;
	}
	case RrType::AAAA: {
		auto* rr = static_cast<dns_rr_a6*>(result);
		for (int i = 0; i < rr->dnsa6_nrr; i++)
			if (inet_ntop(AF_INET6, &rr->dnsa6_addr[i], text, sizeof(text)))
				answer.records.emplace_back(text);
		break;
	}
	case RrType::MX: {
		auto* rr = static_cast<dns_rr_mx*>(result);
		for (int i = 0; i < rr->dnsmx_nrr; i++)
			// RFC 7505: the null MX has the root as exchange, reported as "".
			answer.mx.push_back({rr->dnsmx_mx[i].priority, canonical_dns_name(rr->dnsmx_mx[i].name)});
		if (answer.mx.empty()) answer.status = DnsStatus::nodata;
		return answer;
	}
	case RrType::TXT: {
		// udns joins the character-strings of one TXT record into one text,
		// which is what RFC 7208 3.3 asks for.
		auto* rr = static_cast<dns_rr_txt*>(result);
		for (int i = 0; i < rr->dnstxt_nrr; i++)
			answer.records.emplace_back(reinterpret_cast<const char*>(rr->dnstxt_txt[i].txt),
			                            size_t(rr->dnstxt_txt[i].len));
		break;
	}
	case RrType::PTR: {
		auto* rr = static_cast<dns_rr_ptr*>(result);
		for (int i = 0; i < rr->dnsptr_nrr; i++)
			answer.records.push_back(canonical_dns_name(rr->dnsptr_ptr[i]));
		break;
	}
	}
	if (answer.records.empty()) answer.status = DnsStatus::nodata;
	return answer;
}

// The udns query type and parser of a record type.
struct QueryKind {
	int qtype;
	dns_parse_fn* parse;
};

QueryKind query_kind(RrType type) {
	switch (type) {
	case RrType::A: return {DNS_T_A, dns_parse_a4};
	case RrType::AAAA: return {DNS_T_AAAA, dns_parse_a6};
	case RrType::MX: return {DNS_T_MX, dns_parse_mx};
	case RrType::TXT: return {DNS_T_TXT, dns_parse_txt};
	case RrType::PTR: return {DNS_T_PTR, dns_parse_ptr};
	}
	return {DNS_T_A, dns_parse_a4};
}

DnsAnswer answer_with(DnsStatus status) {
	DnsAnswer answer;
	answer.status = status;
	return answer;
}

// Whether a reply that came over TCP answers our question: the query's
// ID, a response to a standard query, whole (TC clear), and the question
// we asked (name compared without regard to case, RFC 4343), as udns
// checks its UDP replies. `cur` ends up at the question's type field.
bool answers_question(dnscc_t* pkt, dnscc_t* end, uint16_t id, dnscc_t* qdn, int qtype, dnscc_t*& cur) {
	if (end - pkt < DNS_HSIZE) return false;
	if (dns_qid(pkt) != id || !dns_qr(pkt) || dns_opcode(pkt) != 0 || dns_numqd(pkt) != 1) return false;
	// Truncated even over TCP: never a partial RRset (RFC 2181 9).
	if (dns_tc(pkt)) return false;
	dnsc_t dn[DNS_MAXDN];
	cur = dns_payload(pkt);
	if (dns_getdn(pkt, &cur, end, dn, sizeof(dn)) <= 0 || end - cur < 4) return false;
	return dns_dnequal(dn, qdn) && dns_get16(cur) == unsigned(qtype) && dns_get16(cur + 2) == DNS_C_IN;
}

// The answer in a reply that came over TCP, read the way udns reads a UDP
// reply: its RCODE, then udns's own parser for the type (which follows
// CNAMEs and checks every record) and convert(). A reply that does not
// answer our question is a temporary failure, like no reply at all.
DnsAnswer answer_from_tcp_reply(const std::string& reply, uint16_t id, const std::string& name, RrType type) {
	const QueryKind kind = query_kind(type);
	dnsc_t qdn[DNS_MAXDN];
	if (dns_sptodn(name.c_str(), qdn, sizeof(qdn)) <= 0) return answer_with(DnsStatus::nxdomain);
	auto* pkt = reinterpret_cast<dnscc_t*>(reply.data());
	dnscc_t* end = pkt + reply.size();
	dnscc_t* cur = nullptr;
	if (!answers_question(pkt, end, id, qdn, kind.qtype, cur)) return answer_with(DnsStatus::temperror);
	switch (dns_rcode(pkt)) {
	case DNS_R_NOERROR: break;
	case DNS_R_NXDOMAIN: return answer_with(DnsStatus::nxdomain);
	default: return answer_with(DnsStatus::temperror);  // SERVFAIL, REFUSED, ...
	}
	if (dns_numan(pkt) == 0) return answer_with(DnsStatus::nodata);
	void* result = nullptr;
	int code = kind.parse(qdn, pkt, cur, end, &result);
	if (code < 0) return answer_with(status_from_udns(code));
	DnsAnswer answer = convert(type, result);
	std::free(result);
	return answer;
}

// The in_flight_ key of a query: its type and its name in lower case
// without a trailing dot (RFC 4343: names compare without regard to case).
std::string flight_key(RrType type, const std::string& name) {
	return static_cast<char>('0' + static_cast<int>(type)) + canonical_dns_name(name);
}

}  // namespace

UdnsResolver::UdnsResolver(struct ev_loop* loop, const std::vector<std::string>& servers, int64_t timeout_ms)
	: loop_(loop), timeout_seconds_(double(std::max<int64_t>(timeout_ms, 1)) / 1000.0) {
	init_default_context_once();
	ctx_ = dns_new(nullptr);
	if (!ctx_) throw std::runtime_error("dns: cannot allocate resolver context");
	auto fail = [this](const std::string& why) {
		dns_free(ctx_);
		ctx_ = nullptr;
		throw std::runtime_error("dns: " + why);
	};
	if (!servers.empty()) {
		dns_add_serv(ctx_, nullptr);  // forget the resolv.conf servers
		for (const std::string& server : servers) {
			ServerAddress addr;
			if (!parse_server(server, addr)) fail("invalid server address \"" + server + "\"");
			if (dns_add_serv_s(ctx_, &addr.sa) < 0)
				fail("cannot add server \"" + server + "\" (at most " + std::to_string(DNS_MAXSERV) +
				     ")");
		}
	}
	// Names are always absolute: never try the search list.
	dns_add_srch(ctx_, nullptr);
	dns_set_opt(ctx_, DNS_OPT_FLAGS, DNS_NOSRCH);
	// EDNS0 (RFC 6891) so that large TXT sets (SPF, DKIM keys) fit in UDP
	// where the server allows; a reply truncated anyway goes to TCP (see
	// on_udns_packet).
	dns_set_opt(ctx_, DNS_OPT_UDPSIZE, DNS_EDNS0PACKET);
	dns_set_dbgfn(ctx_, on_udns_packet);
	// Our per-query timer enforces timeout_ms exactly; udns must not give
	// up first, and should retransmit once in between (UDP loses packets).
	// With one server udns waits T, then 2T seconds, each try possibly up to
	// a second short (whole seconds of time()): T*3 - 2 >= timeout.
	double budget = double(std::max<int64_t>(timeout_ms, 1)) / 1000.0;
	int per_try = int(std::clamp(std::ceil((budget + 2.0) / 3.0), 1.0, 300.0));
	dns_set_opt(ctx_, DNS_OPT_TIMEOUT, per_try);
	dns_set_opt(ctx_, DNS_OPT_NTRIES, 2);

	ev_init(&timeout_timer_, on_timeout_timer);
	timeout_timer_.data = this;
	ev_init(&deferred_timer_, on_deferred_timer);
	deferred_timer_.data = this;
	dns_set_tmcbck(ctx_, on_udns_timer_request, this);

	int fd = dns_open(ctx_);
	if (fd < 0) fail(std::string("cannot open the UDP socket: ") + std::strerror(errno));
	ev_io_init(&io_watcher_, on_io, fd, EV_READ);
	io_watcher_.data = this;
	ev_io_start(loop_, &io_watcher_);
	// The socket watcher is always on; it must not keep the loop alive by
	// itself; a pending query keeps its deadline timer running, which does.
	ev_unref(loop_);
}

UdnsResolver::~UdnsResolver() {
	for (auto& [id, p] : pending_) withdraw_from_udns(*p);
	pending_.clear();
	deferred_.clear();
	ev_ref(loop_);
	ev_io_stop(loop_, &io_watcher_);
	dns_free(ctx_);  // calls the timer callback with a null context: stops the timer
	ev_timer_stop(loop_, &timeout_timer_);
	ev_timer_stop(loop_, &deferred_timer_);
}

UdnsResolver::Pending::Pending() {
	ev_init(&deadline, on_query_deadline);
	deadline.data = this;
}

UdnsResolver::Pending::~Pending() {
	if (self) ev_timer_stop(self->loop_, &deadline);
}

std::string UdnsResolver::reverse_name(const IpAddr& addr) { return mailauth::reverse_dns_name(addr); }

void UdnsResolver::query(uint64_t owner, const std::string& name, RrType type, Callback cb) {
	const QueryKind kind = query_kind(type);
	uint64_t id = next_id_++;
	auto entry = std::make_unique<Pending>();
	entry->self = this;
	entry->id = id;
	entry->owner = owner;
	entry->name = name;
	entry->type = type;
	entry->cb = std::move(cb);
	Pending* p = entry.get();
	pending_.emplace(id, std::move(entry));
	std::string key = flight_key(type, name);
	if (auto on_wire = in_flight_.find(key); on_wire != in_flight_.end()) {
		// Its deadline is the one on the wire's, which started earlier.
		p->shares = on_wire->second;
		pending_.at(on_wire->second)->sharers.push_back(id);
		return;
	}
	// udns never completes a query inside dns_submit_p (it only queues it
	// and asks for a zero timer), so `p` stays valid here; send_queued()
	// below puts it on the wire.
	p->handle = dns_submit_p(ctx_, name.c_str(), DNS_C_IN, kind.qtype, DNS_NOSRCH, kind.parse, on_udns_answer, p);
	if (!p->handle) {
		// A name too long or with an empty label (DNS_E_BADQUERY: not
		// found), or no memory: answer on the next loop iteration, like a
		// real reply.
		p->answer.status = status_from_udns(dns_status(ctx_));
		defer(id);
		return;
	}
	p->flight_key = key;
	in_flight_.emplace(std::move(key), id);
	ev_timer_set(&p->deadline, timeout_seconds_, 0.);
	ev_timer_start(loop_, &p->deadline);
	send_queued();
}

void UdnsResolver::send_queued() {
	sending_ = true;
	int next = dns_timeouts(ctx_, -1, 0);
	sending_ = false;
	// udns re-arms its timer through on_udns_timer_request, but not when
	// its earliest deadline did not change: then the timer is set here.
	if (next >= 0 && !ev_is_active(&timeout_timer_)) {
		ev_timer_set(&timeout_timer_, next + kTimerSlack, 0.);
		ev_timer_start(loop_, &timeout_timer_);
	}
}

void UdnsResolver::withdraw_from_udns(Pending& p) {
	if (!p.handle) return;
	dns_cancel(ctx_, p.handle);
	std::free(p.handle);  // not freed by udns 0.4's dns_cancel
	p.handle = nullptr;
}

bool UdnsResolver::has_live_sharers(const Pending& p) const {
	return std::any_of(p.sharers.begin(), p.sharers.end(), [this](uint64_t s) { return pending_.count(s) != 0; });
}

void UdnsResolver::answer_flight(uint64_t id, const DnsAnswer& answer) {
	// Taken out before any callback runs, so that a callback may query or
	// cancel freely, and a new query for the same name goes on the wire.
	auto node = pending_.extract(id);
	if (node.empty()) return;
	// Answered another way (over TCP, by the deadline) while udns may
	// still ask other servers.
	withdraw_from_udns(*node.mapped());
	in_flight_.erase(node.mapped()->flight_key);
	Callback cb = std::move(node.mapped()->cb);  // none when its owner was cancelled
	std::vector<uint64_t> sharers = std::move(node.mapped()->sharers);
	node = {};
	if (cb) deliver_answer(cb, answer);
	for (uint64_t sharer : sharers) {
		auto waiting = pending_.extract(sharer);
		if (waiting.empty()) continue;  // its owner was cancelled
		Callback shared_cb = std::move(waiting.mapped()->cb);
		waiting = {};
		if (shared_cb) deliver_answer(shared_cb, answer);
	}
}

void UdnsResolver::on_query_deadline(struct ev_loop*, ev_timer* w, int) {
	auto* p = static_cast<Pending*>(w->data);
	UdnsResolver* self = p->self;
	DnsAnswer answer;
	answer.status = DnsStatus::temperror;
	self->answer_flight(p->id, answer);
}

void UdnsResolver::cancel_owner(uint64_t owner) {
	// Collect first: nothing here calls back, but keep erasure out of the
	// iteration anyway.
	std::vector<uint64_t> ids;
	for (auto& [id, p] : pending_)
		if (p->owner == owner) ids.push_back(id);
	// Queries that share another's go first, so that the ones on the wire
	// below know whether anyone still waits for them.
	std::stable_partition(ids.begin(), ids.end(), [this](uint64_t id) { return pending_.at(id)->shares != 0; });
	for (uint64_t id : ids) {
		auto it = pending_.find(id);
		Pending& p = *it->second;
		// A query that went on the wire keeps its flight key until its
		// answer is given, also while that answer waits for the loop.
		if (!p.flight_key.empty() && has_live_sharers(p)) {
			// Others wait for this answer: it stays on the wire (or
			// deferred) without its own callback (a later cancel of the
			// same owner looks again whether anyone still waits).
			p.cb = nullptr;
			continue;
		}
		withdraw_from_udns(p);
		if (!p.flight_key.empty()) in_flight_.erase(p.flight_key);
		pending_.erase(it);  // a deferred id left in deferred_ is skipped
	}
}

void UdnsResolver::defer(uint64_t id) {
	deferred_.push_back(id);
	if (!ev_is_active(&deferred_timer_)) {
		ev_timer_set(&deferred_timer_, 0., 0.);
		ev_timer_start(loop_, &deferred_timer_);
	}
}

void UdnsResolver::on_udns_answer(dns_ctx* ctx, void* result, void* data) {
	// udns freed its query before calling; `data` is our live entry (an
	// entry is only freed after its query is cancelled or answered).
	auto* p = static_cast<Pending*>(data);
	UdnsResolver* self = p->self;
	if (!result && tcp_outstanding(*p) && dns_status(ctx) == DNS_E_TEMPFAIL) {
		// udns ends a query every server answered truncated (or did not
		// answer) with a temporary failure; the TCP questions, asked by
		// start_tcp_fallbacks() right after dns_ioevent() or on their way
		// already, give the answer instead.
		p->handle = nullptr;  // freed by udns
		return;
	}
	DnsAnswer answer;
	if (result) {
		answer = convert(p->type, result);
		std::free(result);
	} else {
		answer.status = status_from_udns(dns_status(ctx));
	}
	p->handle = nullptr;  // freed by udns
	if (self->sending_) {
		// Ended while query() sends (a send that failed for good): the
		// answer waits for the loop, like an invalid name's; queries that
		// share it get it then.
		p->answer = std::move(answer);
		self->defer(p->id);
		return;
	}
	self->answer_flight(p->id, answer);
}

void UdnsResolver::on_udns_timer_request(dns_ctx* ctx, int timeout, void* data) {
	auto* self = static_cast<UdnsResolver*>(data);
	ev_timer_stop(self->loop_, &self->timeout_timer_);
	if (!ctx || timeout < 0) return;  // context freed, or no active queries
	// udns counts whole seconds of time(); a little slack makes sure the
	// second of the deadline has begun when the timer fires, even though
	// libev measures from its cached loop time.
	ev_timer_set(&self->timeout_timer_, timeout > 0 ? timeout + kTimerSlack : 0., 0.);
	ev_timer_start(self->loop_, &self->timeout_timer_);
}

void UdnsResolver::on_io(struct ev_loop*, ev_io* w, int) {
	auto* self = static_cast<UdnsResolver*>(w->data);
	dns_ioevent(self->ctx_, 0);
	self->start_tcp_fallbacks();
}

void UdnsResolver::on_udns_packet(int code, const struct sockaddr* from, unsigned, const unsigned char* packet,
                                  int length, const dns_query* query, void* data) {
	// Code 0 is a reply udns matched to `query` (ID and question) and is
	// about to act on; `data` is then that query's entry, alive while udns
	// has the query. udns 0.4 drops a NOERROR reply with TC=1, even one
	// with a partial answer section, and tries the next server; we note it
	// for TCP, next to the servers that truncated before (each is asked).
	// Other RCODEs with TC=1 stand as udns reads them (an NXDOMAIN needs
	// no records).
	if (code != 0 || !query || !data || !from || length < DNS_HSIZE) return;
	if (!dns_tc(packet) || dns_rcode(packet) != DNS_R_NOERROR) return;
	auto server = IpAddr::from_sockaddr(from);
	if (!server) return;
	auto* p = static_cast<Pending*>(data);
	int port = ntohs(from->sa_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(from)->sin6_port
	                                             : reinterpret_cast<const sockaddr_in*>(from)->sin_port);
	// One TCP question per server and query: a second truncated reply
	// (to a retransmission) would only ask again what was asked, or
	// what already failed.
	for (const TcpQuestion& asked : p->tcp)
		if (asked.server == *server && asked.port == port) return;
	TcpQuestion question;
	question.server = *server;
	question.port = port;
	question.query_id = uint16_t(dns_qid(packet));
	p->tcp.push_back(std::move(question));
	p->self->truncated_.push_back(p->id);
}

void UdnsResolver::start_tcp_fallbacks() {
	std::vector<uint64_t> ids;
	ids.swap(truncated_);
	for (uint64_t id : ids) {
		auto it = pending_.find(id);
		// Gone: answered by another server meanwhile, or cancelled.
		if (it == pending_.end()) continue;
		Pending& p = *it->second;
		// TCP now (RFC 7766 5), to each server that truncated since the
		// last read, beside any TCP question still out: the first whole
		// answer wins, over TCP or over UDP from a server udns still asks.
		for (size_t which = 0; which < p.tcp.size(); which++)
			if (p.tcp[which].waiting() && !start_tcp(p, which)) p.tcp[which].failed = true;
		fail_if_no_server_left(p);
	}
}

bool UdnsResolver::tcp_outstanding(const Pending& p) {
	return std::any_of(p.tcp.begin(), p.tcp.end(), [](const TcpQuestion& q) { return !q.failed; });
}

void UdnsResolver::tcp_failed(Pending& p, size_t which) {
	p.tcp[which].failed = true;
	p.tcp[which].exchange.reset();  // may be the exchange calling here
	fail_if_no_server_left(p);
}

void UdnsResolver::fail_if_no_server_left(Pending& p) {
	// udns's own end of the query (a temporary failure once every server
	// is asked) or another server's TCP answer is still to come.
	if (p.handle || tcp_outstanding(p)) return;
	answer_flight(p.id, answer_with(DnsStatus::temperror));
}

bool UdnsResolver::start_tcp(Pending& p, size_t which) {
	TcpQuestion& question = p.tcp[which];
	std::string query = dns_tcp_query(p.name, uint16_t(query_kind(p.type).qtype), question.query_id);
	if (query.empty()) return false;
	// The exchange is the entry's: destroyed with it (answered, timed out,
	// cancelled, resolver gone), it never calls back after; the id is
	// looked up anyway. `which` stays valid: questions are only appended.
	question.exchange = std::make_unique<DnsTcpExchange>(
	    loop_, [this, id = p.id, which](std::optional<std::string> reply) { on_tcp_reply(id, which, reply); });
	if (question.exchange->start(question.server, question.port, std::move(query))) return true;
	question.exchange.reset();
	return false;
}

void UdnsResolver::on_tcp_reply(uint64_t id, size_t which, const std::optional<std::string>& reply) {
	auto it = pending_.find(id);
	if (it == pending_.end()) return;
	Pending& p = *it->second;
	DnsAnswer answer = reply ? answer_from_tcp_reply(*reply, p.tcp[which].query_id, p.name, p.type)
				 : answer_with(DnsStatus::temperror);
	// Either destroys the exchange calling here: the last step.
	if (answer.status == DnsStatus::temperror)
		tcp_failed(p, which);
	else
		answer_flight(id, answer);
}

void UdnsResolver::on_timeout_timer(struct ev_loop*, ev_timer* w, int) {
	// Retransmissions and queries udns gave up on (our own deadline ends
	// them first); new queries went out from query() already.
	static_cast<UdnsResolver*>(w->data)->send_queued();
}

void UdnsResolver::on_deferred_timer(struct ev_loop*, ev_timer* w, int) {
	auto* self = static_cast<UdnsResolver*>(w->data);
	std::vector<uint64_t> ids;
	ids.swap(self->deferred_);
	for (uint64_t id : ids) {
		auto it = self->pending_.find(id);
		if (it == self->pending_.end()) continue;  // cancelled meanwhile
		// A query that was on the wire may have been shared meanwhile.
		DnsAnswer answer = std::move(it->second->answer);
		self->answer_flight(id, answer);
	}
}

}  // namespace tern::net
