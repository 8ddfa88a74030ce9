// DNS over TCP for truncated answers; see dns_tcp.h.
#include "net/dns_tcp.h"

#include <udns.h>

#include <algorithm>

#include "net/connect.h"

namespace tern::net {

namespace {

void put16(std::string& out, unsigned value) {
	out.push_back(char((value >> 8) & 0xff));
	out.push_back(char(value & 0xff));
}

}  // namespace

std::string dns_tcp_query(const std::string& name, uint16_t qtype, uint16_t id) {
	dnsc_t dn[DNS_MAXDN];
	int dn_length = dns_sptodn(name.c_str(), dn, sizeof(dn));
	if (dn_length <= 0) return {};
	std::string message;
	put16(message, id);
	message.push_back(char(DNS_HF1_RD));  // a standard query, recursion desired
	message.push_back('\0');
	put16(message, 1);  // QDCOUNT
	put16(message, 0);  // ANCOUNT
	put16(message, 0);  // NSCOUNT
	put16(message, 0);  // ARCOUNT
	message.append(reinterpret_cast<const char*>(dn), size_t(dn_length));
	put16(message, qtype);
	put16(message, DNS_C_IN);
	std::string framed;
	put16(framed, unsigned(message.size()));
	return framed + message;
}

std::size_t DnsTcpFrame::wanted() const {
	if (buffer_.size() < 2) return 2 - buffer_.size();
	std::size_t length = (std::size_t(uint8_t(buffer_[0])) << 8) | uint8_t(buffer_[1]);
	return 2 + length - buffer_.size();
}

bool DnsTcpFrame::add(const char* data, std::size_t size) {
	while (size > 0 && wanted() > 0) {
		std::size_t take = std::min(size, wanted());
		buffer_.append(data, take);
		data += take;
		size -= take;
	}
	return complete();
}

bool DnsTcpFrame::complete() const { return buffer_.size() >= 2 && wanted() == 0; }

DnsTcpExchange::DnsTcpExchange(struct ev_loop* loop, Done done) : loop_(loop), done_(std::move(done)) {
	ev_init(&watcher_, on_ready);
	watcher_.data = this;
}

DnsTcpExchange::~DnsTcpExchange() { ev_io_stop(loop_, &watcher_); }

bool DnsTcpExchange::start(const IpAddr& server, int port, std::string framed_query) {
	OutgoingStream out = connect_stream("", server.to_string(), port);
	if (!out.stream) return false;
	stream_ = std::move(out.stream);
	query_ = std::move(framed_query);
	// Writable means connected (or failed: on_connected asks which).
	stage_ = Stage::connecting;
	ev_io_set(&watcher_, stream_->fd(), EV_WRITE);
	ev_io_start(loop_, &watcher_);
	return true;
}

void DnsTcpExchange::on_ready(struct ev_loop*, ev_io* w, int) {
	auto* self = static_cast<DnsTcpExchange*>(w->data);
	// Each step may end in finish(), which may destroy the exchange: it is
	// the last thing that happens here.
	switch (self->stage_) {
	case Stage::connecting: self->on_connected(); break;
	case Stage::writing: self->write_query(); break;
	case Stage::reading: self->read_reply(); break;
	}
}

void DnsTcpExchange::on_connected() {
	if (!connect_result(*stream_).empty()) {
		finish(std::nullopt);
		return;
	}
	stage_ = Stage::writing;
	write_query();
}

void DnsTcpExchange::write_query() {
	while (written_ < query_.size()) {
		std::size_t n = 0;
		IoStatus status = stream_->write(query_.data() + written_, query_.size() - written_, n);
		if (status == IoStatus::want_write || status == IoStatus::want_read) return;
		if (status != IoStatus::ok) {
			finish(std::nullopt);
			return;
		}
		written_ += n;
	}
	stage_ = Stage::reading;
	ev_io_stop(loop_, &watcher_);
	ev_io_set(&watcher_, stream_->fd(), EV_READ);
	ev_io_start(loop_, &watcher_);
}

void DnsTcpExchange::read_reply() {
	for (;;) {
		char buf[4096];
		std::size_t n = 0;
		IoStatus status = stream_->read(buf, sizeof(buf), n);
		if (status == IoStatus::want_read || status == IoStatus::want_write) return;
		if (status != IoStatus::ok) {
			finish(std::nullopt);  // closed or failed before the whole message
			return;
		}
		if (reply_.add(buf, n)) {
			finish(reply_.message());
			return;
		}
	}
}

void DnsTcpExchange::finish(std::optional<std::string> reply) {
	ev_io_stop(loop_, &watcher_);
	stream_.reset();
	Done done = std::move(done_);
	done_ = nullptr;
	if (done) done(std::move(reply));  // may destroy this exchange
}

}  // namespace tern::net
