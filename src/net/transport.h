// One transport for every SMTP conversation (doc/design.md "The
// transport"): a non-blocking byte stream, plain or TLS, with the STARTTLS
// upgrade. It is the one place that knows whether the bytes are encrypted,
// what the stream waits for (read or write, also the crossed cases of TLS:
// a write that needs a read, a read that needs a write) and whether it is
// closed or broken. The SMTP session and the queue's SMTP client both talk
// through it; tests put a scripted ByteStream under it.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "net/byte_stream.h"
#include "net/tls.h"

namespace tern::net {

class Transport {
public:
	explicit Transport(std::unique_ptr<ByteStream> stream);
	~Transport();
	Transport(const Transport&) = delete;
	Transport& operator=(const Transport&) = delete;

	// Appends what can be read now to `into` (plaintext, or decrypted
	// records, up to a bounded number so one client cannot hold the loop):
	// ok when bytes were added, else want_read/want_write (nothing yet),
	// closed or error. Only after the handshake when TLS is on.
	IoStatus read_into(std::string& into, char* scratch, std::size_t cap);
	// Sends bytes. ok: all len went out (n == len). want_write/want_read: n
	// (maybe 0) went out; call again with the rest unchanged once the
	// transport's interest fires (TLS has already encrypted the next record
	// from those bytes).
	IoStatus write(const char* buf, std::size_t len, std::size_t& n);
	// The least the next write must offer: the TLS record left in flight by
	// the last one (mbedTLS sends it again whole), else 1.
	std::size_t min_write() const { return tls_ && tls_->record_in_flight() > 0 ? tls_->record_in_flight() : 1; }

	// STARTTLS (RFC 3207) or implicit TLS: from here the stream speaks TLS.
	// `leftover` holds bytes already read past the command that asked for
	// it: they are the peer's first handshake bytes, never plaintext
	// (RFC 3207 5; doc/behaviour.md §4). Then call handshake() until ok.
	void start_server_tls(std::shared_ptr<const TlsServerContext> context, std::string_view leftover);
	void start_client_tls(std::shared_ptr<const TlsClientContext> context, const std::string& server_name,
	                      std::string_view leftover);
	IoStatus handshake();

	bool handshaking() const { return tls_ && !tls_->handshake_done(); }
	// TLS is on and its handshake is done.
	bool secure() const { return tls_ && tls_->handshake_done(); }
	// Input waits inside the transport (decrypted bytes, a whole record,
	// fed leftover bytes) although the stream may not be readable.
	bool has_buffered_input() const { return tls_ && tls_->has_buffered_input(); }
	const TlsSession* tls() const { return tls_.get(); }
	// TLS: the last read could not go on before the stream took our output.
	bool read_waits_for_write() const { return read_wants_write_; }

	// What to wait for before the next call, given whether the owner wants
	// input and has output waiting.
	struct Interest {
		bool read = false;
		bool write = false;
	};
	Interest interest(bool want_input, bool have_output) const;

	int fd() const { return stream_->fd(); }
	ByteStream& stream() { return *stream_; }
	// Why the last call returned closed or error.
	std::string last_error() const;

private:
	std::unique_ptr<ByteStream> stream_;
	std::unique_ptr<TlsSession> tls_;  // only while the stream speaks TLS
	bool handshake_wants_write_ = false;
	bool write_wants_read_ = false;  // TLS: the pending write waits for input
	bool read_wants_write_ = false;  // TLS: a read waits for our output to go
};

}  // namespace tern::net
