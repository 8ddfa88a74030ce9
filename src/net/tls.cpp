// TLS over non-blocking sockets with mbedTLS 2.28; see tls.h.
#include "net/tls.h"
#include "util/unique_fd.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>  // MBEDTLS_ERR_NET_* codes only
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

namespace tern::net {

namespace {

// doc/behaviour.md "TLS": ECDHE key exchange (forward secrecy) with AEAD ciphers only,
// in server preference order (Debian builds mbedTLS without
// MBEDTLS_SSL_SRV_RESPECT_CLIENT_PREFERENCE, so the server's order wins).
// mbedTLS only picks suites that fit the certificate's key, so one list
// serves RSA and ECDSA certificates. Static: mbedtls_ssl_config keeps the
// pointer.
const int allowed_ciphersuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

std::string mbed_error_text(int code) {
	char text[256];
	mbedtls_strerror(code, text, sizeof text);
	char hex[16];
	std::snprintf(hex, sizeof hex, " (-0x%04x)", static_cast<unsigned>(-code));
	return std::string(text) + hex;
}

// One CTR_DRBG for the whole process, seeded from the system entropy source
// on first use. Contexts hold a shared_ptr so it outlives all of them, even
// during static destruction.
struct RandomSource {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;

	RandomSource() {
		mbedtls_entropy_init(&entropy);
		mbedtls_ctr_drbg_init(&drbg);
		static const char personalization[] = "tern tls";
		int rc = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
		                               reinterpret_cast<const unsigned char*>(personalization),
		                               sizeof personalization - 1);
		if (rc != 0) {
			mbedtls_ctr_drbg_free(&drbg);
			mbedtls_entropy_free(&entropy);
			throw std::runtime_error("tls: cannot seed the random generator: " + mbed_error_text(rc));
		}
	}
	~RandomSource() {
		mbedtls_ctr_drbg_free(&drbg);
		mbedtls_entropy_free(&entropy);
	}
	RandomSource(const RandomSource&) = delete;
	RandomSource& operator=(const RandomSource&) = delete;
};

std::shared_ptr<RandomSource> shared_random() {
	static const std::shared_ptr<RandomSource> instance = std::make_shared<RandomSource>();
	return instance;
}

// Owns an mbedTLS object with its init/free pair.
template <typename T, void (*Init)(T*), void (*Free)(T*)>
struct Owned {
	T value;
	Owned() { Init(&value); }
	~Owned() { Free(&value); }
	Owned(const Owned&) = delete;
	Owned& operator=(const Owned&) = delete;
	T* get() { return &value; }
	const T* get() const { return &value; }
};

using OwnedCrt = Owned<mbedtls_x509_crt, mbedtls_x509_crt_init, mbedtls_x509_crt_free>;
using OwnedPk = Owned<mbedtls_pk_context, mbedtls_pk_init, mbedtls_pk_free>;
using OwnedSslConfig = Owned<mbedtls_ssl_config, mbedtls_ssl_config_init, mbedtls_ssl_config_free>;
using OwnedSsl = Owned<mbedtls_ssl_context, mbedtls_ssl_init, mbedtls_ssl_free>;
using OwnedMpi = Owned<mbedtls_mpi, mbedtls_mpi_init, mbedtls_mpi_free>;
using OwnedCrtWriter = Owned<mbedtls_x509write_cert, mbedtls_x509write_crt_init, mbedtls_x509write_crt_free>;

// ECDHE groups in preference order, for the server's choice and the client's
// supported_groups (RFC 8422 5.1.1): X25519 (RFC 7748) first, then the NIST
// curves by cost, as OpenSSL and Postfix order them. mbedTLS's default list
// puts the largest curve first, so secp521r1 used to win over X25519.
// secp521r1 stays last so peers that offer nothing else still connect.
const mbedtls_ecp_group_id preferred_curves[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_SECP521R1,  MBEDTLS_ECP_DP_NONE,
};

// Settings both sides share: stream transport, TLS 1.2 only (mbedTLS 2.28
// has no TLS 1.3), the strict suite list, the curve order above, no
// renegotiation (RFC 5746 issues; nothing in SMTP needs it).
void configure_common(mbedtls_ssl_config* config, int endpoint, RandomSource& random) {
	int rc = mbedtls_ssl_config_defaults(config, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
	                                     MBEDTLS_SSL_PRESET_DEFAULT);
	if (rc != 0) throw std::runtime_error("tls: cannot set up TLS configuration: " + mbed_error_text(rc));
	mbedtls_ssl_conf_min_version(config, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(config, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_ciphersuites(config, allowed_ciphersuites);
	mbedtls_ssl_conf_curves(config, preferred_curves);
	mbedtls_ssl_conf_rng(config, mbedtls_ctr_drbg_random, &random.drbg);
	mbedtls_ssl_conf_renegotiation(config, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
}

// True for "1.2.3.4" or an IPv6 literal: RFC 6066 section 3 forbids IP
// addresses in SNI.
bool looks_like_ip_literal(const std::string& name) {
	if (name.find(':') != std::string::npos) return true;
	return !name.empty() &&
	    std::all_of(name.begin(), name.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

constexpr const char* cert_key = "tls.cert_file";
constexpr const char* key_key = "tls.key_file";

// mbedTLS reports any unreadable file as "Read/write of file failed";
// the operator wants to know whether it is missing or a permission problem.
// The errno of opening `path` for reading, 0 when it opens.
int open_error(const std::string& path) { return UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) ? 0 : errno; }

void require_readable(const std::string& path, const char* config_key) {
	if (int e = open_error(path))
		throw TlsFileError(path, config_key, std::string("cannot open: ") + std::strerror(e));
}

}  // namespace

// ---------------------------------------------------------------- contexts

struct TlsServerContext::Impl {
	std::shared_ptr<RandomSource> random = shared_random();
	OwnedCrt chain;
	OwnedPk key;
	OwnedSslConfig config;
};

TlsServerContext::TlsServerContext(const std::string& cert_file, const std::string& key_file)
	: impl_(std::make_unique<Impl>()) {
	require_readable(cert_file, cert_key);
	int rc = mbedtls_x509_crt_parse_file(impl_->chain.get(), cert_file.c_str());
	if (rc > 0) throw TlsFileError(cert_file, cert_key, std::to_string(rc) + " certificate(s) could not be parsed");
	if (rc < 0) throw TlsFileError(cert_file, cert_key, "not a PEM certificate chain: " + mbed_error_text(rc));

	// mbedtls_pk_parse_keyfile tries PKCS#8, PKCS#1 (RSA) and SEC1 (EC).
	// Encrypted keys fail: the daemon has nobody to ask for a passphrase.
	require_readable(key_file, key_key);
	rc = mbedtls_pk_parse_keyfile(impl_->key.get(), key_file.c_str(), nullptr);
	if (rc != 0) throw TlsFileError(key_file, key_key, "not a PEM private key: " + mbed_error_text(rc));
	mbedtls_pk_type_t type = mbedtls_pk_get_type(impl_->key.get());
	if (type != MBEDTLS_PK_RSA && type != MBEDTLS_PK_ECKEY)
		throw TlsFileError(key_file, key_key,
		                   std::string("unsupported key type ") + mbedtls_pk_get_name(impl_->key.get()) +
		                       " (need RSA or ECDSA)");
	rc = mbedtls_pk_check_pair(&impl_->chain.get()->pk, impl_->key.get());
	if (rc != 0)
		throw TlsFileError(key_file, key_key,
		                   "does not match the certificate in " + cert_file + ": " + mbed_error_text(rc));

	mbedtls_ssl_config* config = impl_->config.get();
	configure_common(config, MBEDTLS_SSL_IS_SERVER, *impl_->random);
	rc = mbedtls_ssl_conf_own_cert(config, impl_->chain.get(), impl_->key.get());
	if (rc != 0) throw TlsFileError(cert_file, cert_key, "cannot use the certificate: " + mbed_error_text(rc));
	// SMTP clients do not present certificates to us.
	mbedtls_ssl_conf_authmode(config, MBEDTLS_SSL_VERIFY_NONE);
}

TlsServerContext::~TlsServerContext() = default;

std::optional<std::string> certificate_problem(const std::string& cert_file, const std::string& key_file) {
	if (cert_file.empty() || access(cert_file.c_str(), F_OK) != 0 || access(key_file.c_str(), F_OK) != 0)
		return std::nullopt;
	try {
		TlsServerContext loaded(cert_file, key_file);
	} catch (const TlsFileError& e) {
		return e.what();
	}
	return std::nullopt;
}

struct TlsClientContext::Impl {
	std::shared_ptr<RandomSource> random = shared_random();
	OwnedCrt trusted;
	bool verifies = false;
	OwnedSslConfig config;
};

TlsClientContext::TlsClientContext(const std::string& ca_file) : impl_(std::make_unique<Impl>()) {
	mbedtls_ssl_config* config = impl_->config.get();
	configure_common(config, MBEDTLS_SSL_IS_CLIENT, *impl_->random);
	// Sessions are not cached, so tickets would be thrown away.
	mbedtls_ssl_conf_session_tickets(config, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
	if (ca_file.empty()) {
		// RFC 7435: opportunistic security encrypts without authenticating.
		mbedtls_ssl_conf_authmode(config, MBEDTLS_SSL_VERIFY_NONE);
		return;
	}
	if (int e = open_error(ca_file))
		throw std::runtime_error("tls: cannot load CA file " + ca_file + ": " + std::strerror(e));
	int rc = mbedtls_x509_crt_parse_file(impl_->trusted.get(), ca_file.c_str());
	if (rc < 0) throw std::runtime_error("tls: cannot load CA file " + ca_file + ": " + mbed_error_text(rc));
	// A few unparsable entries in a system bundle are tolerated (rc > 0);
	// an empty result is not.
	if (impl_->trusted.get()->raw.p == nullptr)
		throw std::runtime_error("tls: CA file " + ca_file + " holds no usable certificate");
	mbedtls_ssl_conf_ca_chain(config, impl_->trusted.get(), nullptr);
	// Optional: the handshake completes and the caller decides from
	// peer_verify_error().
	mbedtls_ssl_conf_authmode(config, MBEDTLS_SSL_VERIFY_OPTIONAL);
	impl_->verifies = true;
}

TlsClientContext::~TlsClientContext() = default;

// ---------------------------------------------------------------- session

struct TlsSession::Impl {
	std::shared_ptr<const void> context;  // keeps the mbedtls_ssl_config alive
	ByteStream* stream = nullptr;
	std::unique_ptr<FdStream> fd_stream;  // for the constructors given a bare fd
	bool is_client = false;
	bool client_verifies = false;
	bool peer_is_ip_literal = false;  // no host name for mbedTLS to check
	bool handshake_complete = false;
	OwnedSsl ssl;
	// Bytes read from the socket before TLS started; the recv callback drains
	// them before touching the socket.
	std::string leftover;
	std::size_t leftover_pos = 0;
	// Length of the record mbedTLS encrypted but could not yet send; the next
	// write must pass (at least) those same bytes again.
	std::size_t pending_write = 0;
	std::string stream_error;  // the stream's reason for the last failed call
	std::string error;

	static int send_callback(void* self, const unsigned char* buf, std::size_t len);
	static int recv_callback(void* self, unsigned char* buf, std::size_t len);
	IoStatus status_from(int rc, const char* operation);
	void attach(const mbedtls_ssl_config* config);
	void attach_client(std::shared_ptr<const TlsClientContext> client_context, const std::string& server_name);
};

int TlsSession::Impl::send_callback(void* self, const unsigned char* buf, std::size_t len) {
	auto& session = *static_cast<Impl*>(self);
	std::size_t sent = 0;
	switch (session.stream->write(reinterpret_cast<const char*>(buf), len, sent)) {
	case IoStatus::ok: return static_cast<int>(sent);
	case IoStatus::want_write:
	case IoStatus::want_read: return MBEDTLS_ERR_SSL_WANT_WRITE;
	case IoStatus::closed: session.stream_error = session.stream->last_error(); return MBEDTLS_ERR_NET_CONN_RESET;
	case IoStatus::error: break;
	}
	session.stream_error = session.stream->last_error();
	return MBEDTLS_ERR_NET_SEND_FAILED;
}

int TlsSession::Impl::recv_callback(void* self, unsigned char* buf, std::size_t len) {
	auto& session = *static_cast<Impl*>(self);
	if (session.leftover_pos < session.leftover.size()) {
		std::size_t take = std::min(len, session.leftover.size() - session.leftover_pos);
		std::memcpy(buf, session.leftover.data() + session.leftover_pos, take);
		session.leftover_pos += take;
		if (session.leftover_pos == session.leftover.size()) {
			session.leftover = std::string();
			session.leftover_pos = 0;
		}
		return static_cast<int>(take);
	}
	std::size_t got = 0;
	switch (session.stream->read(reinterpret_cast<char*>(buf), len, got)) {
	case IoStatus::ok: return static_cast<int>(got);
	case IoStatus::want_read:
	case IoStatus::want_write: return MBEDTLS_ERR_SSL_WANT_READ;
	case IoStatus::closed: return 0;  // EOF or reset: mbedTLS makes it CONN_EOF
	case IoStatus::error: break;
	}
	session.stream_error = session.stream->last_error();
	return MBEDTLS_ERR_NET_RECV_FAILED;
}

IoStatus TlsSession::Impl::status_from(int rc, const char* operation) {
	switch (rc) {
	case MBEDTLS_ERR_SSL_WANT_READ: return IoStatus::want_read;
	case MBEDTLS_ERR_SSL_WANT_WRITE: return IoStatus::want_write;
	case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
		error = std::string(operation) + ": peer sent close_notify";
		return IoStatus::closed;
	case MBEDTLS_ERR_SSL_CONN_EOF:
		error = std::string(operation) + ": connection closed by peer";
		return IoStatus::closed;
	case MBEDTLS_ERR_NET_CONN_RESET:
		error = std::string(operation) + ": " +
		    (stream_error.empty() ? std::strerror(ECONNRESET) : stream_error);
		return IoStatus::closed;
	case MBEDTLS_ERR_NET_SEND_FAILED:
	case MBEDTLS_ERR_NET_RECV_FAILED: error = std::string(operation) + ": " + stream_error; return IoStatus::error;
	default: error = std::string(operation) + ": " + mbed_error_text(rc); return IoStatus::error;
	}
}

void TlsSession::Impl::attach(const mbedtls_ssl_config* config) {
	int rc = mbedtls_ssl_setup(ssl.get(), config);
	if (rc != 0) throw std::runtime_error("tls: cannot set up session: " + mbed_error_text(rc));
	mbedtls_ssl_set_bio(ssl.get(), this, send_callback, recv_callback, nullptr);
}

TlsSession::TlsSession(std::shared_ptr<const TlsServerContext> context, ByteStream& stream)
	: impl_(std::make_unique<Impl>()) {
	impl_->stream = &stream;
	impl_->attach(context->impl().config.get());
	impl_->context = std::move(context);
}

TlsSession::TlsSession(std::shared_ptr<const TlsServerContext> context, int fd) : impl_(std::make_unique<Impl>()) {
	impl_->fd_stream = std::make_unique<FdStream>(BorrowedFd{fd});
	impl_->stream = impl_->fd_stream.get();
	impl_->attach(context->impl().config.get());
	impl_->context = std::move(context);
}

TlsSession::TlsSession(std::shared_ptr<const TlsClientContext> context, ByteStream& stream,
                       const std::string& server_name)
	: impl_(std::make_unique<Impl>()) {
	impl_->stream = &stream;
	impl_->attach_client(std::move(context), server_name);
}

TlsSession::TlsSession(std::shared_ptr<const TlsClientContext> context, int fd, const std::string& server_name)
	: impl_(std::make_unique<Impl>()) {
	impl_->fd_stream = std::make_unique<FdStream>(BorrowedFd{fd});
	impl_->stream = impl_->fd_stream.get();
	impl_->attach_client(std::move(context), server_name);
}

void TlsSession::Impl::attach_client(std::shared_ptr<const TlsClientContext> client_context,
                                     const std::string& server_name) {
	is_client = true;
	client_verifies = client_context->impl().verifies;
	attach(client_context->impl().config.get());
	// The host name is both the SNI value and, when verifying, the name the
	// certificate must carry.
	peer_is_ip_literal = server_name.empty() || looks_like_ip_literal(server_name);
	if (!peer_is_ip_literal) {
		int rc = mbedtls_ssl_set_hostname(ssl.get(), server_name.c_str());
		if (rc != 0)
			throw std::runtime_error("tls: cannot use server name " + server_name + ": " +
			                         mbed_error_text(rc));
	}
	context = std::move(client_context);
}

TlsSession::~TlsSession() = default;

void TlsSession::feed_plaintext_leftover(std::string_view bytes) { impl_->leftover.append(bytes); }

IoStatus TlsSession::handshake() {
	Impl& s = *impl_;
	if (s.handshake_complete) return IoStatus::ok;
	int rc = mbedtls_ssl_handshake(s.ssl.get());
	if (rc != 0) return s.status_from(rc, "TLS handshake");
	s.handshake_complete = true;
	return IoStatus::ok;
}

bool TlsSession::handshake_done() const { return impl_->handshake_complete; }

IoStatus TlsSession::read(char* buf, std::size_t cap, std::size_t& n) {
	Impl& s = *impl_;
	n = 0;
	if (!s.handshake_complete) {
		s.error = "TLS read before the handshake completed";
		return IoStatus::error;
	}
	if (cap == 0) return IoStatus::ok;
	int rc = mbedtls_ssl_read(s.ssl.get(), reinterpret_cast<unsigned char*>(buf), cap);
	if (rc > 0) {
		n = static_cast<std::size_t>(rc);
		return IoStatus::ok;
	}
	if (rc == 0) {
		s.error = "TLS read: connection closed by peer";
		return IoStatus::closed;
	}
	return s.status_from(rc, "TLS read");
}

IoStatus TlsSession::write(const char* buf, std::size_t len, std::size_t& n) {
	Impl& s = *impl_;
	n = 0;
	if (!s.handshake_complete) {
		s.error = "TLS write before the handshake completed";
		return IoStatus::error;
	}
	const auto* bytes = reinterpret_cast<const unsigned char*>(buf);
	if (s.pending_write > 0) {
		// mbedtls_ssl_write contract: after WANT_WRITE, call again with the
		// same arguments. The record is already encrypted, so this only
		// flushes it and then reports its length as written.
		if (len < s.pending_write) {
			s.error = "TLS write retried with fewer bytes than the record in flight";
			return IoStatus::error;
		}
		int rc = mbedtls_ssl_write(s.ssl.get(), bytes, s.pending_write);
		if (rc < 0) return s.status_from(rc, "TLS write");
		s.pending_write = 0;
		n = static_cast<std::size_t>(rc);
	}
	while (n < len) {
		// Cut the data into record-sized chunks ourselves, so that the length
		// of the record in flight is known when WANT_WRITE comes back.
		int max_payload = mbedtls_ssl_get_max_out_record_payload(s.ssl.get());
		if (max_payload <= 0) return s.status_from(max_payload, "TLS write");
		std::size_t chunk = std::min(len - n, static_cast<std::size_t>(max_payload));
		int rc = mbedtls_ssl_write(s.ssl.get(), bytes + n, chunk);
		if (rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ) {
			s.pending_write = chunk;
			return rc == MBEDTLS_ERR_SSL_WANT_WRITE ? IoStatus::want_write : IoStatus::want_read;
		}
		if (rc < 0) return s.status_from(rc, "TLS write");
		n += static_cast<std::size_t>(rc);
	}
	return IoStatus::ok;
}

IoStatus TlsSession::close_notify() {
	Impl& s = *impl_;
	if (!s.handshake_complete) return IoStatus::ok;
	int rc = mbedtls_ssl_close_notify(s.ssl.get());
	if (rc != 0) return s.status_from(rc, "TLS close_notify");
	return IoStatus::ok;
}

bool TlsSession::has_buffered_input() const {
	const Impl& s = *impl_;
	return mbedtls_ssl_get_bytes_avail(s.ssl.get()) > 0 || mbedtls_ssl_check_pending(s.ssl.get()) != 0 ||
	    s.leftover_pos < s.leftover.size();
}

std::size_t TlsSession::record_in_flight() const { return impl_->pending_write; }

int TlsSession::fd() const { return impl_->stream->fd(); }

std::string TlsSession::version() const {
	if (!impl_->handshake_complete) return {};
	// mbedTLS says "TLSv1.2"; the Received comment wants "TLS1.2".
	std::string name = mbedtls_ssl_get_version(impl_->ssl.get());
	if (name.rfind("TLSv", 0) == 0) name.erase(3, 1);
	return name;
}

std::string TlsSession::cipher_iana() const {
	if (!impl_->handshake_complete) return {};
	const char* name = mbedtls_ssl_get_ciphersuite(impl_->ssl.get());
	if (name == nullptr) return {};
	// mbedTLS: "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256"; IANA uses '_'.
	std::string iana = name;
	std::replace(iana.begin(), iana.end(), '-', '_');
	return iana;
}

std::string TlsSession::received_comment() const { return "(" + version() + " " + cipher_iana() + ")"; }

std::string TlsSession::peer_verify_error() const {
	const Impl& s = *impl_;
	if (!s.is_client) return {};
	if (!s.client_verifies) return "not verified";
	if (!s.handshake_complete) return "handshake not complete";
	uint32_t flags = mbedtls_ssl_get_verify_result(s.ssl.get());
	// mbedTLS 2.28 matches only DNS names (RFC 6125 6.4); a chain that
	// verifies says nothing about whose it is without one.
	if (flags == 0 && s.peer_is_ip_literal)
		return "the certificate cannot be matched to an IP address; name the server by its host name";
	if (flags == 0) return {};
	char text[512];
	int len = mbedtls_x509_crt_verify_info(text, sizeof text, "", flags);
	std::string result = len > 0 ? std::string(text, static_cast<std::size_t>(len)) : "verification failed";
	// One problem per line from mbedTLS; join them for a log line.
	while (!result.empty() && result.back() == '\n') result.pop_back();
	std::replace(result.begin(), result.end(), '\n', ';');
	return result;
}

std::string TlsSession::last_error() const { return impl_->error; }

// ---------------------------------------------------------------- self-signed

namespace {

std::string der_length(std::size_t length) {
	if (length < 0x80) return std::string(1, static_cast<char>(length));
	if (length < 0x100) return std::string{'\x81', static_cast<char>(length)};
	return std::string{'\x82', static_cast<char>(length >> 8), static_cast<char>(length & 0xff)};
}

std::string der(unsigned char tag, std::string_view content) {
	return std::string(1, static_cast<char>(tag)) + der_length(content.size()) + std::string(content);
}

// X.509 time "YYYYMMDDhhmmss" in UTC, years_later years after `when`.
std::string x509_time(std::time_t when, int years_later) {
	std::tm tm{};
	gmtime_r(&when, &tm);
	tm.tm_year += years_later;
	if (tm.tm_mon == 1 && tm.tm_mday == 29) tm.tm_mday = 28;  // no Feb 29 in most years
	char text[32];
	std::strftime(text, sizeof text, "%Y%m%d%H%M%S", &tm);
	return text;
}

void write_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
	namespace fs = std::filesystem;
	auto fail = [&](const std::string& what, int err) {
		throw std::runtime_error("tls: cannot write " + path + ": " + what + ": " + std::strerror(err));
	};
	fs::path parent = fs::path(path).parent_path();
	if (!parent.empty()) {
		std::error_code ec;
		fs::create_directories(parent, ec);
		if (ec)
			throw std::runtime_error("tls: cannot create directory " + parent.string() + ": " +
			                         ec.message());
	}
	std::string temp = path + ".tmp." + std::to_string(::getpid());
	::unlink(temp.c_str());
	UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
	if (!fd) fail("open " + temp, errno);
	TempFile temp_file(temp);  // removed on every way out but the rename
	// The umask must not loosen or tighten the mode we promise.
	if (::fchmod(fd.get(), mode) != 0) fail("chmod", errno);
	std::size_t done = 0;
	while (done < content.size()) {
		ssize_t w = ::write(fd.get(), content.data() + done, content.size() - done);
		if (w < 0) {
			if (errno == EINTR) continue;
			fail("write", errno);
		}
		done += static_cast<std::size_t>(w);
	}
	if (::fsync(fd.get()) != 0) fail("fsync", errno);
	if (fd.close() != 0) fail("close", errno);
	if (::rename(temp.c_str(), path.c_str()) != 0) fail("rename", errno);
	temp_file.commit();
	// Make the rename itself durable.
	UniqueFd dir_fd(::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (dir_fd) ::fsync(dir_fd.get());
}

// Host names only (letters, digits, '-', '.', '_', '*'): they go into a
// mbedTLS subject string, where ',' '=' '\\' would be syntax.
bool valid_certificate_name(const std::string& name) {
	if (name.empty() || name.size() > 253) return false;
	return std::all_of(name.begin(), name.end(), [](char c) {
		return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '.' || c == '_' || c == '*';
	});
}

void check_mbed(int rc, const std::string& what) {
	if (rc != 0) throw std::runtime_error("tls: " + what + ": " + mbed_error_text(rc));
}

void generate_key(OwnedPk& key, SelfSignedKeyType key_type, RandomSource& random) {
	if (key_type == SelfSignedKeyType::rsa_2048) {
		check_mbed(mbedtls_pk_setup(key.get(), mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)), "RSA key setup");
		check_mbed(
		    mbedtls_rsa_gen_key(mbedtls_pk_rsa(*key.get()), mbedtls_ctr_drbg_random, &random.drbg, 2048, 65537),
		    "RSA key generation");
	} else {
		check_mbed(mbedtls_pk_setup(key.get(), mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), "EC key setup");
		check_mbed(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key.get()),
		                               mbedtls_ctr_drbg_random, &random.drbg),
		           "EC key generation");
	}
}

// Subject and issuer (the same: self-signed), serial number and validity.
void set_identity(mbedtls_x509write_cert* crt, OwnedPk& key, const std::string& common_name, RandomSource& random) {
	mbedtls_x509write_crt_set_version(crt, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(crt, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(crt, key.get());
	mbedtls_x509write_crt_set_issuer_key(crt, key.get());
	std::string subject = "CN=" + common_name;
	check_mbed(mbedtls_x509write_crt_set_subject_name(crt, subject.c_str()), "subject name");
	check_mbed(mbedtls_x509write_crt_set_issuer_name(crt, subject.c_str()), "issuer name");

	// RFC 5280 4.1.2.2: a positive serial of at most 20 octets; random so a
	// regenerated certificate never repeats one a client has seen.
	unsigned char serial_bytes[16];
	check_mbed(mbedtls_ctr_drbg_random(&random.drbg, serial_bytes, sizeof serial_bytes), "serial number");
	serial_bytes[0] = static_cast<unsigned char>((serial_bytes[0] & 0x7f) | 0x40);
	OwnedMpi serial;
	check_mbed(mbedtls_mpi_read_binary(serial.get(), serial_bytes, sizeof serial_bytes), "serial number");
	check_mbed(mbedtls_x509write_crt_set_serial(crt, serial.get()), "serial number");

	// Back-dated an hour so a client with a slightly slow clock accepts it.
	std::time_t now = std::time(nullptr);
	check_mbed(
	    mbedtls_x509write_crt_set_validity(crt, x509_time(now - 3600, 0).c_str(), x509_time(now, 10).c_str()),
	    "validity");
}

void set_extensions(mbedtls_x509write_cert* crt, SelfSignedKeyType key_type, const std::string& common_name) {
	check_mbed(mbedtls_x509write_crt_set_basic_constraints(crt, 0, -1), "basic constraints");
	check_mbed(mbedtls_x509write_crt_set_subject_key_identifier(crt), "subject key identifier");
	check_mbed(mbedtls_x509write_crt_set_authority_key_identifier(crt), "authority key identifier");
	unsigned int usage = MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
	if (key_type == SelfSignedKeyType::rsa_2048) usage |= MBEDTLS_X509_KU_KEY_ENCIPHERMENT;
	check_mbed(mbedtls_x509write_crt_set_key_usage(crt, static_cast<unsigned char>(usage)), "key usage");

	// RFC 5280 4.2.1.12: ExtKeyUsageSyntax ::= SEQUENCE OF KeyPurposeId,
	// here only id-kp-serverAuth.
	std::string server_auth_oid(MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH));
	std::string extended_usage = der(0x30, der(0x06, server_auth_oid));
	check_mbed(mbedtls_x509write_crt_set_extension(
		       crt, MBEDTLS_OID_EXTENDED_KEY_USAGE, MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0,
		       reinterpret_cast<const unsigned char*>(extended_usage.data()), extended_usage.size()),
	           "extended key usage");

	// RFC 5280 4.2.1.6: GeneralNames ::= SEQUENCE OF GeneralName, with
	// dNSName [2] IA5String (implicit tag 0x82). mbedTLS 2.28 has no writer
	// for it, so it is encoded here. Clients match the SAN, not the CN
	// (RFC 6125 6.4.4).
	std::string alt_names = der(0x30, der(0x82, common_name));
	check_mbed(mbedtls_x509write_crt_set_extension(
		       crt, MBEDTLS_OID_SUBJECT_ALT_NAME, MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0,
		       reinterpret_cast<const unsigned char*>(alt_names.data()), alt_names.size()),
	           "subject alternative name");
}

// Key first: a crash in between leaves a key without certificate, and the
// daemon regenerates both when either is missing. The key's PEM text is
// wiped from memory once written.
void write_key_and_certificate(OwnedPk& key, mbedtls_x509write_cert* crt, RandomSource& random,
                               const std::string& cert_path, const std::string& key_path) {
	std::string key_pem(16000, '\0');
	check_mbed(
	    mbedtls_pk_write_key_pem(key.get(), reinterpret_cast<unsigned char*>(key_pem.data()), key_pem.size()),
	    "writing the private key");
	key_pem.resize(std::strlen(key_pem.c_str()));
	std::string cert_pem(16000, '\0');
	check_mbed(mbedtls_x509write_crt_pem(crt, reinterpret_cast<unsigned char*>(cert_pem.data()), cert_pem.size(),
	                                     mbedtls_ctr_drbg_random, &random.drbg),
	           "writing the certificate");
	cert_pem.resize(std::strlen(cert_pem.c_str()));
	try {
		write_file_atomically(key_path, key_pem, 0600);
	} catch (...) {
		mbedtls_platform_zeroize(key_pem.data(), key_pem.size());
		throw;
	}
	mbedtls_platform_zeroize(key_pem.data(), key_pem.size());
	write_file_atomically(cert_path, cert_pem, 0644);
}

}  // namespace

void generate_self_signed(const std::string& cert_path, const std::string& key_path, const std::string& common_name,
                          SelfSignedKeyType key_type) {
	if (!valid_certificate_name(common_name))
		throw std::runtime_error("tls: cannot make a certificate for \"" + common_name + "\": not a host name");
	auto random = shared_random();
	OwnedPk key;
	generate_key(key, key_type, *random);
	OwnedCrtWriter writer;
	set_identity(writer.get(), key, common_name, *random);
	set_extensions(writer.get(), key_type, common_name);
	write_key_and_certificate(key, writer.get(), *random, cert_path, key_path);
}

}  // namespace tern::net
