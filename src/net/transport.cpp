// Plain or TLS over one byte stream; see transport.h.
#include "net/transport.h"

namespace tern::net {

namespace {
// Decrypted records taken per read_into call: a TLS record may hold more
// than one read's worth, but a client must not keep the loop to itself.
constexpr int max_records_per_read = 16;
}  // namespace

Transport::Transport(std::unique_ptr<ByteStream> stream) : stream_(std::move(stream)) {}

Transport::~Transport() = default;

IoStatus Transport::read_into(std::string& into, char* scratch, std::size_t cap) {
	read_wants_write_ = false;
	if (!tls_) {
		std::size_t n = 0;
		IoStatus st = stream_->read(scratch, cap, n);
		if (st == IoStatus::ok) into.append(scratch, n);
		return st;
	}
	bool got = false;
	for (int round = 0; round < max_records_per_read; ++round) {
		std::size_t n = 0;
		IoStatus st = tls_->read(scratch, cap, n);
		if (st == IoStatus::ok && n > 0) {
			into.append(scratch, n);
			got = true;
			if (!tls_->has_buffered_input()) break;
			continue;
		}
		if (st == IoStatus::want_write) read_wants_write_ = true;
		// Bytes already taken count first; a close or error behind them
		// shows on the next call.
		if (got) break;
		return st == IoStatus::ok ? IoStatus::want_read : st;
	}
	return IoStatus::ok;
}

IoStatus Transport::write(const char* buf, std::size_t len, std::size_t& n) {
	n = 0;
	if (tls_) {
		IoStatus st = tls_->write(buf, len, n);
		write_wants_read_ = st == IoStatus::want_read;
		return st;
	}
	while (n < len) {
		std::size_t sent = 0;
		IoStatus st = stream_->write(buf + n, len - n, sent);
		n += sent;
		if (st != IoStatus::ok) return st;
		if (sent == 0) return IoStatus::want_write;
	}
	return IoStatus::ok;
}

void Transport::start_server_tls(std::shared_ptr<const TlsServerContext> context, std::string_view leftover) {
	tls_ = std::make_unique<TlsSession>(std::move(context), *stream_);
	if (!leftover.empty()) tls_->feed_plaintext_leftover(leftover);
	handshake_wants_write_ = write_wants_read_ = read_wants_write_ = false;
}

void Transport::start_client_tls(std::shared_ptr<const TlsClientContext> context, const std::string& server_name,
                                 std::string_view leftover) {
	tls_ = std::make_unique<TlsSession>(std::move(context), *stream_, server_name);
	if (!leftover.empty()) tls_->feed_plaintext_leftover(leftover);
	handshake_wants_write_ = write_wants_read_ = read_wants_write_ = false;
}

IoStatus Transport::handshake() {
	if (!tls_) return IoStatus::error;
	IoStatus st = tls_->handshake();
	handshake_wants_write_ = st == IoStatus::want_write;
	return st;
}

Transport::Interest Transport::interest(bool want_input, bool have_output) const {
	Interest i;
	if (handshaking()) {
		(handshake_wants_write_ ? i.write : i.read) = true;
		return i;
	}
	if (have_output) (write_wants_read_ ? i.read : i.write) = true;
	if (read_wants_write_) i.write = true;
	if (want_input) i.read = true;
	return i;
}

std::string Transport::last_error() const { return tls_ ? tls_->last_error() : stream_->last_error(); }

}  // namespace tern::net
