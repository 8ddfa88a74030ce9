#include "helpers/dns_server.h"

#include <arpa/inet.h>
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
	thread_ = std::thread([this] { serve(); });
}

DnsServer::~DnsServer() { stop(); }

void DnsServer::stop() {
	stop_ = true;
	if (thread_.joinable()) thread_.join();
	if (fd_ >= 0) ::close(fd_);
	fd_ = -1;
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
		pollfd pfd{fd_, POLLIN, 0};
		int n = poll(&pfd, 1, 50);
		if (n <= 0) continue;
		char buf[4096];
		sockaddr_storage from{};
		socklen_t fromlen = sizeof(from);
		ssize_t len = recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fromlen);
		if (len <= 0) continue;
		bool reply = false;
		std::string response = answer(std::string(buf, size_t(len)), reply);
		if (reply && !silent_)
			sendto(fd_, response.data(), response.size(), 0, reinterpret_cast<sockaddr*>(&from), fromlen);
	}
}

std::string DnsServer::answer(const std::string& q, bool& reply) {
	reply = false;
	if (q.size() < 12) return "";
	uint16_t qdcount = uint16_t((uint8_t(q[4]) << 8) | uint8_t(q[5]));
	if (qdcount != 1 || (uint8_t(q[2]) & 0x80)) return "";
	// Question: name labels, type, class.
	size_t off = 12;
	std::string name;
	while (off < q.size()) {
		uint8_t l = uint8_t(q[off]);
		if (l == 0) {
			off++;
			break;
		}
		if (l & 0xc0) return "";  // no compression in questions
		if (!name.empty()) name += '.';
		name += q.substr(off + 1, l);
		off += 1 + l;
	}
	if (off + 4 > q.size()) return "";
	size_t question_end = off + 4;
	uint16_t qtype = uint16_t((uint8_t(q[off]) << 8) | uint8_t(q[off + 1]));
	name = normalize_name(name);
	std::string qtype_name = type_name(qtype);

	std::vector<std::pair<std::string, std::pair<std::string, std::string>>> answers;  // owner, (type, value)
	int rcode = 0;
	{
		std::lock_guard<std::mutex> lock(mutex_);
		queries_.push_back(name + " " + qtype_name);
		if (silent_names_.count(name)) return "";
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

	std::string out;
	out += q.substr(0, 2);                         // id
	uint8_t opcode_rd = uint8_t(q[2]) & 0x79;      // opcode and RD from the query
	out.push_back(char(0x80 | 0x04 | opcode_rd));  // QR, AA
	out.push_back(char(0x80 | rcode));             // RA, rcode
	put16(out, 1);
	std::vector<std::string> encoded;
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
		encoded.push_back(rr);
	}
	put16(out, uint16_t(encoded.size()));
	put16(out, 0);
	put16(out, 0);
	out += q.substr(12, question_end - 12);
	for (auto& rr : encoded) out += rr;
	reply = true;
	return out;
}

}  // namespace tern::testing
