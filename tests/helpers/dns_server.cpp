#include "helpers/dns_server.h"

#include <arpa/inet.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

namespace tern::testing {

namespace {

std::string normalize_name(std::string name) {
	while (!name.empty() && name.back() == '.') name.pop_back();
	for (char& c : name)
		if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
	return name;
}

std::string upper(std::string s) {
	for (char& c : s)
		if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
	return s;
}

// RFC 1035 3.2.2 type values.
const std::map<std::string, uint16_t> type_numbers = {
    {"A", 1}, {"NS", 2}, {"CNAME", 5}, {"SOA", 6}, {"PTR", 12}, {"MX", 15}, {"TXT", 16}, {"AAAA", 28}, {"ANY", 255},
};

std::string type_name(uint16_t t) {
	for (auto& [name, number] : type_numbers)
		if (number == t) return name;
	return "TYPE" + std::to_string(t);
}

void put16(std::string& out, uint16_t v) {
	out.push_back(char(v >> 8));
	out.push_back(char(v & 0xff));
}

void put32(std::string& out, uint32_t v) {
	put16(out, uint16_t(v >> 16));
	put16(out, uint16_t(v & 0xffff));
}

// Uncompressed domain name (RFC 1035 3.1).
void put_name(std::string& out, const std::string& name) {
	std::string n = normalize_name(name);
	size_t start = 0;
	while (start < n.size()) {
		size_t dot = n.find('.', start);
		if (dot == std::string::npos) dot = n.size();
		std::string label = n.substr(start, dot - start);
		out.push_back(char(label.size()));
		out += label;
		start = dot + 1;
	}
	out.push_back('\0');
}

// RDATA for one record; false when the value cannot be encoded.
bool encode_rdata(const std::string& type, const std::string& value, std::string& rdata) {
	rdata.clear();
	if (type == "A") {
		in_addr a{};
		if (inet_pton(AF_INET, value.c_str(), &a) != 1) return false;
		rdata.assign(reinterpret_cast<const char*>(&a), 4);
	} else if (type == "AAAA") {
		in6_addr a{};
		if (inet_pton(AF_INET6, value.c_str(), &a) != 1) return false;
		rdata.assign(reinterpret_cast<const char*>(&a), 16);
	} else if (type == "MX") {
		size_t sp = value.find(' ');
		if (sp == std::string::npos) return false;
		put16(rdata, uint16_t(std::stoi(value.substr(0, sp))));
		put_name(rdata, value.substr(sp + 1));
	} else if (type == "TXT") {
		size_t off = 0;
		do {
			std::string part = value.substr(off, 255);
			rdata.push_back(char(part.size()));
			rdata += part;
			off += 255;
		} while (off < value.size());
	} else if (type == "PTR" || type == "CNAME" || type == "NS") {
		put_name(rdata, value);
	} else {
		return false;
	}
	return true;
}

}  // namespace

DnsServer::DnsServer() {
	bind_sockets();
	thread_ = std::thread([this] { serve(); });
}

// UDP on a random port, TCP on the same one (a resolver falls back to TCP
// at the address it asked over UDP); another port when that one is taken.
void DnsServer::bind_sockets() {
	for (int attempt = 0; attempt < 20; attempt++) {
		fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd_ < 0) throw std::runtime_error(std::string("dns socket: ") + strerror(errno));
		sockaddr_in sin{};
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = 0;
		if (bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0)
			throw std::runtime_error(std::string("dns bind: ") + strerror(errno));
		socklen_t len = sizeof(sin);
		getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len);
		port_ = ntohs(sin.sin_port);
		tcp_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (tcp_fd_ < 0) throw std::runtime_error(std::string("dns tcp socket: ") + strerror(errno));
		int on = 1;
		setsockopt(tcp_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (bind(tcp_fd_, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 0 && listen(tcp_fd_, 16) == 0)
			return;
		::close(tcp_fd_);
		::close(fd_);
		tcp_fd_ = fd_ = -1;
	}
	throw std::runtime_error("dns: no port free for both UDP and TCP");
}

DnsServer::~DnsServer() { stop(); }

void DnsServer::stop() {
	stop_ = true;
	if (thread_.joinable()) thread_.join();
	for (int fd : held_connections_) ::close(fd);
	held_connections_.clear();
	if (fd_ >= 0) ::close(fd_);
	if (tcp_fd_ >= 0) ::close(tcp_fd_);
	fd_ = tcp_fd_ = -1;
}

std::string DnsServer::address() const { return "127.0.0.1:" + std::to_string(port_); }

void DnsServer::add(const std::string& name, const std::string& type, const std::string& value) {
	std::lock_guard<std::mutex> lock(mutex_);
	records_[normalize_name(name)].emplace_back(upper(type), value);
}

void DnsServer::remove(const std::string& name, const std::string& type) {
	std::lock_guard<std::mutex> lock(mutex_);
	auto it = records_.find(normalize_name(name));
	if (it == records_.end()) return;
	if (type.empty()) {
		records_.erase(it);
		return;
	}
	std::string t = upper(type);
	auto& v = it->second;
	for (size_t i = v.size(); i-- > 0;)
		if (v[i].first == t) v.erase(v.begin() + long(i));
	if (v.empty()) records_.erase(it);
}

void DnsServer::add_silent_name(const std::string& name) {
	std::lock_guard<std::mutex> lock(mutex_);
	silent_names_.insert(normalize_name(name));
}

void DnsServer::add_servfail_name(const std::string& name) {
	std::lock_guard<std::mutex> lock(mutex_);
	servfail_names_.insert(normalize_name(name));
}

void DnsServer::truncate_udp_over(size_t max_bytes, Truncation how) {
	truncation_ = how;
	udp_limit_ = max_bytes;
}

std::vector<std::string> DnsServer::tcp_queries() const {
	std::lock_guard<std::mutex> lock(mutex_);
	return tcp_queries_;
}

std::vector<std::string> DnsServer::queries() const {
	std::lock_guard<std::mutex> lock(mutex_);
	return queries_;
}

void DnsServer::clear_queries() {
	std::lock_guard<std::mutex> lock(mutex_);
	queries_.clear();
}

void DnsServer::add_standard_zone() {
	add("sender.example", "A", "127.0.0.1");
	add("sender.example", "MX", "10 sender.example");
	add("sender.example", "TXT", "v=spf1 ip4:127.0.0.1 ip6:::1 -all");
	add("client.sender.example", "A", "127.0.0.1");
	add("client.sender.example", "AAAA", "::1");
	add("1.0.0.127.in-addr.arpa", "PTR", "client.sender.example");
	add("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa", "PTR", "client.sender.example");
	add("test.example", "MX", "10 mx.test.example");
	add("mx.test.example", "A", "127.0.0.1");
}

void DnsServer::serve() {
	while (!stop_) {
		pollfd pfds[2] = {{fd_, POLLIN, 0}, {tcp_fd_, POLLIN, 0}};
		if (poll(pfds, 2, 50) <= 0) continue;
		if (pfds[0].revents & POLLIN) serve_udp();
		if (pfds[1].revents & POLLIN) serve_tcp();
	}
}

void DnsServer::serve_udp() {
	char buf[4096];
	sockaddr_storage from{};
	socklen_t fromlen = sizeof(from);
	ssize_t len = recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fromlen);
	if (len <= 0) return;
	Reply reply;
	if (!answer(std::string(buf, size_t(len)), false, reply) || silent_) return;
	std::string response = encode(reply, false);
	sendto(fd_, response.data(), response.size(), 0, reinterpret_cast<sockaddr*>(&from), fromlen);
}

namespace {

// Reads exactly `size` bytes within a second; false on EOF, error or delay.
bool read_exactly(int fd, std::string& out, size_t size) {
	out.clear();
	while (out.size() < size) {
		pollfd pfd{fd, POLLIN, 0};
		if (poll(&pfd, 1, 1000) <= 0) return false;
		char buf[4096];
		ssize_t n = ::read(fd, buf, std::min(sizeof(buf), size - out.size()));
		if (n <= 0) return false;
		out.append(buf, size_t(n));
	}
	return true;
}

}  // namespace

// One query on a new connection: a two-byte length, then the message
// (RFC 1035 4.2.2); the reply is framed the same way.
void DnsServer::serve_tcp() {
	int conn = ::accept4(tcp_fd_, nullptr, nullptr, SOCK_CLOEXEC);
	if (conn < 0) return;
	std::string length, query;
	Reply reply;
	bool answered = read_exactly(conn, length, 2) &&
	    read_exactly(conn, query, (size_t(uint8_t(length[0])) << 8) | uint8_t(length[1])) &&
	    answer(query, true, reply);
	if (answered && tcp_mode_ == TcpMode::silent) {
		held_connections_.push_back(conn);
		return;
	}
	if (answered && (tcp_mode_ == TcpMode::answer || tcp_mode_ == TcpMode::wrong_id)) {
		std::string message = encode(reply, true);
		if (tcp_mode_ == TcpMode::wrong_id) message[0] = char(message[0] ^ 0x5a);
		std::string framed;
		put16(framed, uint16_t(message.size()));
		framed += message;
		for (size_t off = 0; off < framed.size();) {
			ssize_t n = ::send(conn, framed.data() + off, framed.size() - off, MSG_NOSIGNAL);
			if (n <= 0) break;
			off += size_t(n);
		}
	}
	::close(conn);
}

std::string DnsServer::encode(const Reply& reply, bool over_tcp) const {
	std::string out = reply.header_and_question;
	size_t limit = over_tcp ? 0 : udp_limit_.load();
	size_t whole = out.size();
	for (const auto& rr : reply.records) whole += rr.size();
	bool truncate = limit != 0 && whole > limit;
	uint16_t count = 0;
	for (const auto& rr : reply.records) {
		if (truncate && (truncation_ == Truncation::empty_answer || out.size() + rr.size() > limit)) break;
		out += rr;
		count++;
	}
	if (truncate) out[2] = char(out[2] | 0x02);  // TC
	out[6] = char(count >> 8);
	out[7] = char(count & 0xff);
	return out;
}

bool DnsServer::answer(const std::string& q, bool over_tcp, Reply& reply) {
	if (q.size() < 12) return false;
	uint16_t qdcount = uint16_t((uint8_t(q[4]) << 8) | uint8_t(q[5]));
	if (qdcount != 1 || (uint8_t(q[2]) & 0x80)) return false;
	// Question: name labels, type, class.
	size_t off = 12;
	std::string name;
	while (off < q.size()) {
		uint8_t l = uint8_t(q[off]);
		if (l == 0) {
			off++;
			break;
		}
		if (l & 0xc0) return false;  // no compression in questions
		if (!name.empty()) name += '.';
		name += q.substr(off + 1, l);
		off += 1 + l;
	}
	if (off + 4 > q.size()) return false;
	size_t question_end = off + 4;
	uint16_t qtype = uint16_t((uint8_t(q[off]) << 8) | uint8_t(q[off + 1]));
	name = normalize_name(name);
	std::string qtype_name = type_name(qtype);

	std::vector<std::pair<std::string, std::pair<std::string, std::string>>> answers;  // owner, (type, value)
	int rcode = 0;
	{
		std::lock_guard<std::mutex> lock(mutex_);
		queries_.push_back(name + " " + qtype_name);
		if (over_tcp) tcp_queries_.push_back(name + " " + qtype_name);
		if (silent_names_.count(name)) return false;
		if (servfail_names_.count(name)) {
			rcode = 2;
		} else {
			std::string current = name;
			for (int depth = 0; depth < 8; depth++) {
				auto it = records_.find(current);
				if (it == records_.end()) {
					if (depth == 0) rcode = 3;  // NXDOMAIN
					break;
				}
				std::string cname_target;
				for (auto& rec : it->second) {
					if (rec.first == qtype_name || qtype_name == "ANY")
						answers.push_back({current, rec});
					else if (rec.first == "CNAME" && qtype_name != "CNAME")
						cname_target = rec.second;
				}
				if (cname_target.empty()) break;
				answers.push_back({current, {"CNAME", cname_target}});
				current = normalize_name(cname_target);
			}
		}
	}

	std::string& out = reply.header_and_question;
	out = q.substr(0, 2);                          // id
	uint8_t opcode_rd = uint8_t(q[2]) & 0x79;      // opcode and RD from the query
	out.push_back(char(0x80 | 0x04 | opcode_rd));  // QR, AA
	out.push_back(char(0x80 | rcode));             // RA, rcode
	put16(out, 1);
	put16(out, 0);  // ANCOUNT, set by encode()
	put16(out, 0);
	put16(out, 0);
	out += q.substr(12, question_end - 12);
	reply.records.clear();
	for (auto& [owner, rec] : answers) {
		std::string rdata;
		if (!encode_rdata(rec.first, rec.second, rdata)) continue;
		std::string rr;
		put_name(rr, owner);
		put16(rr, type_numbers.at(rec.first));
		put16(rr, 1);  // IN
		put32(rr, 300);
		put16(rr, uint16_t(rdata.size()));
		rr += rdata;
		reply.records.push_back(rr);
	}
	return true;
}

}  // namespace tern::testing
