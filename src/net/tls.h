// TLS over non-blocking sockets with mbedTLS 2.28 (doc/behaviour.md "TLS"; doc/design.md
// net layer). Nothing here blocks: every socket operation returns
// want_read/want_write and the caller (the libev loop) retries once the fd is
// ready again.
//
// mbedTLS 2.28 speaks TLS 1.2 at most (no TLS 1.3), so both contexts pin
// min = max = TLS 1.2 and allow only ECDHE key exchange with AEAD ciphers
// (AES-GCM, ChaCha20-Poly1305).
//
// Threading: contexts and sessions are used only on the loop thread.
// generate_self_signed() runs at start-up, before the loop. The one random
// generator (CTR_DRBG seeded from the system entropy source) is shared by all
// contexts; Debian builds mbedTLS with MBEDTLS_THREADING_PTHREAD, so the DRBG
// has its own mutex and would stay correct even if a worker thread used it.
//
// Memory: Debian's mbedTLS is built without MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH
// and with the default 16 KiB record size, which cannot be changed at run
// time. Every TlsSession therefore holds two record buffers of about 16.5 KiB
// each (plus ~1 KiB of cipher state, and the handshake state of a few KiB,
// freed when the handshake ends): roughly 35 KiB per TLS connection. A
// session exists only while a connection speaks TLS; plaintext connections
// pay nothing.
#pragma once
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "net/byte_stream.h"

namespace tern::net {

// A certificate or key file of the config's `tls` section that cannot be
// used; what() is "<file>: tls.cert_file: <problem>" (or tls.key_file), the
// form of every config error (man/tern.json.5).
struct TlsFileError : std::runtime_error {
	TlsFileError(const std::string& file, const char* config_key, const std::string& problem)
		: std::runtime_error(file + ": " + config_key + ": " + problem) {}
};

// For `ternd -n` and `ternctl check`: why the config's certificate and key
// cannot be used (a TlsFileError's text), nullopt when they load or when
// either file is not there yet (the start check reports a missing file).
std::optional<std::string> certificate_problem(const std::string& cert_file, const std::string& key_file);

// Server side: certificate chain and private key for one set of listeners.
// Immutable after construction and shared by sessions through shared_ptr, so
// a SIGHUP reload can build a new context while open sessions keep theirs.
class TlsServerContext {
public:
	// Loads a PEM certificate chain (leaf first) and a PEM private key (RSA
	// or ECDSA; PKCS#1, SEC1 or unencrypted PKCS#8). Throws TlsFileError
	// with mbedTLS's error text when a file is missing or broken, or when the
	// key does not match the leaf certificate.
	TlsServerContext(const std::string& cert_file, const std::string& key_file);
	~TlsServerContext();
	TlsServerContext(const TlsServerContext&) = delete;
	TlsServerContext& operator=(const TlsServerContext&) = delete;

	struct Impl;  // internal, defined in tls.cpp
	const Impl& impl() const { return *impl_; }

private:
	std::unique_ptr<Impl> impl_;
};

// Client side, for the outbound queue. Opportunistic SMTP TLS does not
// verify the peer (RFC 7435 section 1.3): without a CA file no verification
// is done. With a CA file the chain is checked but a failure does not abort
// the handshake; TlsSession::peer_verify_error() reports it so the caller can
// decide (smarthost_tls "required").
class TlsClientContext {
public:
	explicit TlsClientContext(const std::string& ca_file = {});
	~TlsClientContext();
	TlsClientContext(const TlsClientContext&) = delete;
	TlsClientContext& operator=(const TlsClientContext&) = delete;

	struct Impl;  // internal, defined in tls.cpp
	const Impl& impl() const { return *impl_; }

private:
	std::unique_ptr<Impl> impl_;
};

// One TLS connection over a non-blocking byte stream (a socket, or a script
// in tests). The session owns neither the stream nor the fd (the caller
// keeps them alive longer) and keeps its context alive.
class TlsSession {
public:
	// Server side, e.g. after "220 2.0.0 go!" or on an implicit-TLS accept.
	TlsSession(std::shared_ptr<const TlsServerContext> context, ByteStream& stream);
	TlsSession(std::shared_ptr<const TlsServerContext> context, int fd);
	// Client side; server_name is sent as SNI (RFC 6066 section 3) and, with
	// a CA file, checked against the certificate.
	TlsSession(std::shared_ptr<const TlsClientContext> context, ByteStream& stream, const std::string& server_name);
	TlsSession(std::shared_ptr<const TlsClientContext> context, int fd, const std::string& server_name);
	~TlsSession();
	TlsSession(const TlsSession&) = delete;
	TlsSession& operator=(const TlsSession&) = delete;

	// Bytes already read from the socket before this session existed, e.g.
	// a client that pipelined its ClientHello right after STARTTLS. They are
	// handed to the TLS engine before anything read from the socket, so they
	// become handshake input and are never executed as plaintext SMTP
	// (doc/behaviour.md §4, STARTTLS). Call before handshake().
	void feed_plaintext_leftover(std::string_view bytes);

	// Drives the handshake; ok once it is complete. Call again on
	// want_read/want_write.
	IoStatus handshake();
	bool handshake_done() const;

	// Reads decrypted bytes into buf. ok with n > 0 on data; closed when the
	// peer sent close_notify, closed the socket or reset it. After an ok,
	// check has_buffered_input(): decrypted bytes may be waiting inside the
	// session while the socket itself is not readable.
	IoStatus read(char* buf, std::size_t cap, std::size_t& n);

	// Encrypts and sends buf. ok: all len bytes were sent (n == len).
	// want_write: n bytes (maybe 0) were sent and the socket is full. Then
	// call write() again, once the fd is writable, with data that starts at
	// buf + n and is unchanged: mbedTLS has already encrypted the next record
	// from those bytes and only flushes it on the retry (mbedtls_ssl_write
	// contract). More bytes may be appended meanwhile. A retry with fewer
	// bytes than the record in flight is an error.
	IoStatus write(const char* buf, std::size_t len, std::size_t& n);

	// Sends close_notify (RFC 5246 section 7.2.1); ok when it is out.
	IoStatus close_notify();

	// True when the session has input without the socket being readable:
	// decrypted bytes, a complete record or pre-fed leftover bytes. The loop
	// must keep calling read() (or handshake(), right after
	// feed_plaintext_leftover) while this is true.
	bool has_buffered_input() const;
	// Bytes of the record a write left in flight (want_write/want_read):
	// the next write must offer at least these again; 0 when none.
	std::size_t record_in_flight() const;

	int fd() const;
	// After the handshake: "TLS1.2".
	std::string version() const;
	// After the handshake: the IANA name of the suite, e.g.
	// "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".
	std::string cipher_iana() const;
	// For the Received header (doc/behaviour.md "TLS"):
	// "(TLS1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)".
	std::string received_comment() const;
	// Client side with a CA file: empty when the peer certificate verified
	// (chain and host name), else why not (mbedTLS's verify flags as text,
	// joined by ';'). A server named by an IP address never verifies: the
	// name cannot be matched. Without a CA file: "not verified".
	std::string peer_verify_error() const;
	// Why the last call returned error (or closed).
	std::string last_error() const;

	struct Impl;

private:
	std::unique_ptr<Impl> impl_;
};

enum class SelfSignedKeyType { ecdsa_p256, rsa_2048 };

// Writes a new private key and a self-signed X.509 v3 certificate for
// common_name (also as subjectAltName dNSName, RFC 5280 4.2.1.6), valid for 10
// years, as PEM. The key file gets mode 0600. Each file is written to a
// temporary name, fsync'd and renamed into place; missing parent directories
// are created. Throws std::runtime_error naming the file on failure. For
// localserve's first start (doc/behaviour.md "localserve"); blocking, not for the loop.
void generate_self_signed(const std::string& cert_path, const std::string& key_path, const std::string& common_name,
                          SelfSignedKeyType key_type = SelfSignedKeyType::ecdsa_p256);

}  // namespace tern::net
