// TLS sessions over non-blocking sockets (doc/behaviour.md "TLS"; doc/behaviour.md
// section 4, STARTTLS). No network: both ends of a socketpair run in this
// process, driven alternately as the event loop would.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include <mbedtls/base64.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "net/tls.h"
#include "unit/files.h"

using tern::net::generate_self_signed;
using tern::net::IoStatus;
using tern::net::SelfSignedKeyType;
using tern::net::TlsClientContext;
using tern::net::TlsServerContext;
using tern::net::TlsSession;

namespace {

using tern::testing::read_file;
using tern::testing::TempDir;
using tern::testing::write_file;

// Both ends non-blocking, like accepted and outbound sockets in the daemon.
struct SocketPair {
	int client_fd = -1;
	int server_fd = -1;
	explicit SocketPair(int send_buffer = 0) {
		int fds[2];
		REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
		client_fd = fds[0];
		server_fd = fds[1];
		if (send_buffer > 0) {
			// Small buffers so a large write must wait for the reader.
			REQUIRE(::setsockopt(client_fd, SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer) == 0);
			REQUIRE(::setsockopt(server_fd, SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer) == 0);
		}
	}
	~SocketPair() {
		if (client_fd >= 0) ::close(client_fd);
		if (server_fd >= 0) ::close(server_fd);
	}
};

// Runs both handshakes in turn until both are complete.
void complete_handshake(TlsSession& client, TlsSession& server) {
	bool client_done = false;
	bool server_done = false;
	for (int round = 0; round < 100 && !(client_done && server_done); ++round) {
		if (!client_done) {
			IoStatus status = client.handshake();
			INFO("client: " << client.last_error());
			REQUIRE((status == IoStatus::ok || status == IoStatus::want_read ||
			         status == IoStatus::want_write));
			client_done = status == IoStatus::ok;
		}
		if (!server_done) {
			IoStatus status = server.handshake();
			INFO("server: " << server.last_error());
			REQUIRE((status == IoStatus::ok || status == IoStatus::want_read ||
			         status == IoStatus::want_write));
			server_done = status == IoStatus::ok;
		}
	}
	REQUIRE(client_done);
	REQUIRE(server_done);
	CHECK(client.handshake_done());
	CHECK(server.handshake_done());
}

// Sends `data` from writer to reader, reading whenever the writer must wait.
// Returns what the reader got; counts the writer's want_write results.
std::string transfer(TlsSession& writer, TlsSession& reader, const std::string& data, int& want_writes) {
	std::size_t sent = 0;
	std::string received;
	char buf[4096];
	for (int round = 0; round < 100000 && received.size() < data.size(); ++round) {
		if (sent < data.size()) {
			std::size_t n = 0;
			// After want_write the retry starts at data + sent, which holds
			// the record in flight, as write() requires.
			IoStatus status = writer.write(data.data() + sent, data.size() - sent, n);
			INFO("writer: " << writer.last_error());
			REQUIRE(n <= data.size() - sent);
			sent += n;
			if (status == IoStatus::want_write)
				++want_writes;
			else
				REQUIRE(status == IoStatus::ok);
		}
		for (;;) {
			std::size_t n = 0;
			IoStatus status = reader.read(buf, sizeof buf, n);
			if (status == IoStatus::ok) {
				REQUIRE(n > 0);
				received.append(buf, n);
				continue;
			}
			INFO("reader: " << reader.last_error());
			REQUIRE(status == IoStatus::want_read);
			break;
		}
	}
	CHECK(sent == data.size());
	return received;
}

std::string patterned_bytes(std::size_t size, unsigned seed) {
	std::string data(size, '\0');
	for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>((i * 31 + seed + i / 251) & 0xff);
	return data;
}

std::string der_length(std::size_t length) {
	if (length < 0x80) return std::string(1, static_cast<char>(length));
	if (length < 0x100) return std::string{'\x81', static_cast<char>(length)};
	return std::string{'\x82', static_cast<char>(length >> 8), static_cast<char>(length & 0xff)};
}

std::string der(unsigned char tag, const std::string& content) {
	return std::string(1, static_cast<char>(tag)) + der_length(content.size()) + content;
}

// Rewrites a PKCS#1 RSA key file as an unencrypted PKCS#8 "PRIVATE KEY"
// (RFC 5208 section 5), the form `openssl genpkey` writes.
std::string rsa_key_as_pkcs8_pem(const std::string& pkcs1_path) {
	mbedtls_pk_context key;
	mbedtls_pk_init(&key);
	REQUIRE(mbedtls_pk_parse_keyfile(&key, pkcs1_path.c_str(), nullptr) == 0);
	unsigned char buf[4096];
	int len = mbedtls_pk_write_key_der(&key, buf, sizeof buf);  // written at the end of buf
	mbedtls_pk_free(&key);
	REQUIRE(len > 0);
	std::string pkcs1(reinterpret_cast<char*>(buf + sizeof buf - len), static_cast<std::size_t>(len));
	const std::string rsa_encryption_oid = "\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01";
	std::string algorithm = der(0x30, der(0x06, rsa_encryption_oid) + std::string("\x05\x00", 2));
	std::string info = der(0x30, std::string("\x02\x01\x00", 3) + algorithm + der(0x04, pkcs1));
	unsigned char b64[8192];
	std::size_t b64_len = 0;
	REQUIRE(mbedtls_base64_encode(b64, sizeof b64, &b64_len, reinterpret_cast<const unsigned char*>(info.data()),
	                              info.size()) == 0);
	std::string text(reinterpret_cast<char*>(b64), b64_len);
	std::string pem = "-----BEGIN PRIVATE KEY-----\n";
	for (std::size_t i = 0; i < text.size(); i += 64) pem += text.substr(i, 64) + "\n";
	pem += "-----END PRIVATE KEY-----\n";
	return pem;
}

struct Credentials {
	TempDir dir;
	std::string cert;
	std::string key;
	explicit Credentials(SelfSignedKeyType type = SelfSignedKeyType::ecdsa_p256,
	                     const std::string& name = "localhost") {
		cert = dir.path + "/tls/cert.pem";
		key = dir.path + "/tls/key.pem";
		generate_self_signed(cert, key, name, type);
	}
};

}  // namespace

TEST_CASE("generate_self_signed writes an ECDSA key (0600) and a v3 certificate with SAN") {
	TempDir dir;
	std::string cert_path = dir.path + "/sub/cert.pem";
	std::string key_path = dir.path + "/sub/key.pem";
	generate_self_signed(cert_path, key_path, "mail.example.org");

	struct stat st {};
	REQUIRE(::stat(key_path.c_str(), &st) == 0);
	CHECK((st.st_mode & 0777) == 0600);
	REQUIRE(::stat(cert_path.c_str(), &st) == 0);
	CHECK((st.st_mode & 0777) == 0644);
	CHECK(read_file(key_path).rfind("-----BEGIN EC PRIVATE KEY-----\n", 0) == 0);
	CHECK(read_file(cert_path).rfind("-----BEGIN CERTIFICATE-----\n", 0) == 0);
	// Only the two files; no temporary left behind.
	int entries = 0;
	for ([[maybe_unused]] auto& entry : std::filesystem::directory_iterator(dir.path + "/sub")) ++entries;
	CHECK(entries == 2);

	mbedtls_x509_crt crt;
	mbedtls_x509_crt_init(&crt);
	REQUIRE(mbedtls_x509_crt_parse_file(&crt, cert_path.c_str()) == 0);
	CHECK(crt.version == 3);
	char name[256];
	REQUIRE(mbedtls_x509_dn_gets(name, sizeof name, &crt.subject) > 0);
	CHECK(std::string(name) == "CN=mail.example.org");
	REQUIRE(mbedtls_x509_dn_gets(name, sizeof name, &crt.issuer) > 0);
	CHECK(std::string(name) == "CN=mail.example.org");
	CHECK((crt.ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME) != 0);
	CHECK(std::string(reinterpret_cast<const char*>(crt.subject_alt_names.buf.p), crt.subject_alt_names.buf.len) ==
	      "mail.example.org");
	CHECK(crt.subject_alt_names.next == nullptr);
	CHECK((crt.ext_types & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE) != 0);
	CHECK(mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_SERVER_AUTH,
	                                                MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) == 0);
	CHECK(crt.ca_istrue == 0);
	CHECK(mbedtls_pk_get_type(&crt.pk) == MBEDTLS_PK_ECKEY);
	std::time_t now = std::time(nullptr);
	std::tm utc{};
	gmtime_r(&now, &utc);
	CHECK(crt.valid_to.year == utc.tm_year + 1900 + 10);
	CHECK(mbedtls_x509_time_is_past(&crt.valid_from) == 1);
	mbedtls_x509_crt_free(&crt);
}

TEST_CASE("generate_self_signed refuses a name that is not a host name") {
	TempDir dir;
	CHECK_THROWS_AS(generate_self_signed(dir.path + "/c.pem", dir.path + "/k.pem", "a,CN=b"), std::runtime_error);
	CHECK_THROWS_AS(generate_self_signed(dir.path + "/c.pem", dir.path + "/k.pem", ""), std::runtime_error);
	CHECK_FALSE(std::filesystem::exists(dir.path + "/k.pem"));
}

TEST_CASE("ECDSA handshake over a socketpair, TLS 1.2 ECDHE AEAD, data both ways") {
	Credentials credentials;
	auto server_context = std::make_shared<const TlsServerContext>(credentials.cert, credentials.key);
	auto client_context = std::make_shared<const TlsClientContext>();
	SocketPair sockets;
	TlsSession server(server_context, sockets.server_fd);
	TlsSession client(client_context, sockets.client_fd, "localhost");
	// A SIGHUP reload drops the daemon's reference; the session keeps its own.
	server_context.reset();

	CHECK(server.fd() == sockets.server_fd);
	CHECK(server.version() == "");
	size_t n = 99;
	CHECK(server.read(nullptr, 0, n) == IoStatus::error);  // before the handshake
	CHECK(n == 0);

	complete_handshake(client, server);

	CHECK(server.version() == "TLS1.2");
	CHECK(client.version() == "TLS1.2");
	// The server's preference order puts AES-128-GCM first.
	CHECK(server.cipher_iana() == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
	CHECK(client.cipher_iana() == server.cipher_iana());
	CHECK(server.received_comment() == "(TLS1.2 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)");
	CHECK(client.peer_verify_error() == "not verified");
	CHECK(server.peer_verify_error() == "");

	int want_writes = 0;
	CHECK(transfer(client, server, "EHLO client.example\r\n", want_writes) == "EHLO client.example\r\n");
	CHECK(transfer(server, client, "250-localhost\r\n250 8BITMIME\r\n", want_writes) ==
	      "250-localhost\r\n250 8BITMIME\r\n");
	CHECK(want_writes == 0);
	CHECK_FALSE(server.has_buffered_input());
	CHECK_FALSE(client.has_buffered_input());
}

TEST_CASE("RSA certificate with a PKCS#1 key, then the same key as PKCS#8") {
	Credentials credentials(SelfSignedKeyType::rsa_2048);
	CHECK(read_file(credentials.key).rfind("-----BEGIN RSA PRIVATE KEY-----\n", 0) == 0);
	std::string pkcs8_path = credentials.dir.path + "/pkcs8.pem";
	write_file(pkcs8_path, rsa_key_as_pkcs8_pem(credentials.key));

	for (const std::string& key_path : {credentials.key, pkcs8_path}) {
		CAPTURE(key_path);
		auto server_context = std::make_shared<const TlsServerContext>(credentials.cert, key_path);
		auto client_context = std::make_shared<const TlsClientContext>();
		SocketPair sockets;
		TlsSession server(server_context, sockets.server_fd);
		TlsSession client(client_context, sockets.client_fd, "localhost");
		complete_handshake(client, server);
		CHECK(server.version() == "TLS1.2");
		CHECK(server.cipher_iana() == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
		CHECK(server.received_comment() == "(TLS1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)");
		int want_writes = 0;
		CHECK(transfer(client, server, "QUIT\r\n", want_writes) == "QUIT\r\n");
	}
}

TEST_CASE("100 KiB each way through small socket buffers needs several want_write rounds") {
	Credentials credentials;
	auto server_context = std::make_shared<const TlsServerContext>(credentials.cert, credentials.key);
	auto client_context = std::make_shared<const TlsClientContext>();
	SocketPair sockets(4096);
	TlsSession server(server_context, sockets.server_fd);
	TlsSession client(client_context, sockets.client_fd, "localhost");
	complete_handshake(client, server);

	const std::string big = patterned_bytes(100 * 1024, 7);
	int want_writes = 0;
	std::string received = transfer(server, client, big, want_writes);
	CHECK(received.size() == big.size());
	CHECK(received == big);
	CHECK(want_writes >= 3);

	const std::string upload = patterned_bytes(100 * 1024 + 13, 91);
	want_writes = 0;
	received = transfer(client, server, upload, want_writes);
	CHECK(received == upload);
	CHECK(want_writes >= 3);
}

TEST_CASE("a retry after want_write with fewer bytes than the record in flight is refused") {
	Credentials credentials;
	auto server_context = std::make_shared<const TlsServerContext>(credentials.cert, credentials.key);
	auto client_context = std::make_shared<const TlsClientContext>();
	SocketPair sockets(4096);
	TlsSession server(server_context, sockets.server_fd);
	TlsSession client(client_context, sockets.client_fd, "localhost");
	complete_handshake(client, server);

	const std::string big = patterned_bytes(64 * 1024, 3);
	std::size_t sent = 0;
	IoStatus status = IoStatus::ok;
	std::size_t n = 0;
	for (int i = 0; i < 10 && status == IoStatus::ok && sent < big.size(); ++i) {
		status = server.write(big.data() + sent, big.size() - sent, n);
		sent += n;
	}
	REQUIRE(status == IoStatus::want_write);
	REQUIRE(sent < big.size());
	CHECK(server.write(big.data() + sent, 1, n) == IoStatus::error);
	CHECK(n == 0);
	CHECK(server.last_error() == "TLS write retried with fewer bytes than the record in flight");
}

TEST_CASE("decrypted bytes beyond the read capacity stay buffered in the session") {
	Credentials credentials;
	auto server_context = std::make_shared<const TlsServerContext>(credentials.cert, credentials.key);
	auto client_context = std::make_shared<const TlsClientContext>();
	SocketPair sockets;
	TlsSession server(server_context, sockets.server_fd);
	TlsSession client(client_context, sockets.client_fd, "localhost");
	complete_handshake(client, server);

	const std::string message = patterned_bytes(3000, 11);
	std::size_t n = 0;
	REQUIRE(client.write(message.data(), message.size(), n) == IoStatus::ok);
	CHECK(n == message.size());

	char buf[100];
	REQUIRE(server.read(buf, sizeof buf, n) == IoStatus::ok);
	CHECK(n == 100);
	std::string received(buf, n);
	// The socket is now empty: the rest of the record sits in the session.
	char probe;
	CHECK(::recv(sockets.server_fd, &probe, 1, MSG_PEEK) == -1);
	CHECK(server.has_buffered_input());
	while (server.has_buffered_input()) {
		REQUIRE(server.read(buf, sizeof buf, n) == IoStatus::ok);
		received.append(buf, n);
	}
	CHECK(received == message);
	CHECK(server.read(buf, sizeof buf, n) == IoStatus::want_read);
	CHECK(n == 0);
}

TEST_CASE("bytes read before STARTTLS completed are fed into the server handshake") {
	Credentials credentials;
	auto server_context = std::make_shared<const TlsServerContext>(credentials.cert, credentials.key);
	auto client_context = std::make_shared<const TlsClientContext>();

	// All of the ClientHello pre-read, or only its first bytes (the rest
	// still in the socket).
	for (std::size_t preread_limit : {std::size_t(65536), std::size_t(7)}) {
		CAPTURE(preread_limit);
		SocketPair sockets;
		TlsSession client(client_context, sockets.client_fd, "localhost");
		REQUIRE(client.handshake() == IoStatus::want_read);  // ClientHello sent

		// The SMTP layer read these bytes as if they were pipelined commands.
		std::string leftover(preread_limit, '\0');
		ssize_t got = ::recv(sockets.server_fd, leftover.data(), leftover.size(), 0);
		REQUIRE(got > 0);
		leftover.resize(static_cast<std::size_t>(got));
		CHECK(leftover[0] == '\x16');  // a TLS handshake record (RFC 5246 6.2.1)

		TlsSession server(server_context, sockets.server_fd);
		server.feed_plaintext_leftover(leftover);
		CHECK(server.has_buffered_input());
		complete_handshake(client, server);
		CHECK_FALSE(server.has_buffered_input());
		CHECK(server.version() == "TLS1.2");

		int want_writes = 0;
		CHECK(transfer(client, server, "MAIL FROM:<a@example.org>\r\n", want_writes) ==
		      "MAIL FROM:<a@example.org>\r\n");
	}
}

TEST_CASE("close_notify and a dropped socket end the peer's reads with closed") {
	Credentials credentials;
	auto server_context = std::make_shared<const TlsServerContext>(credentials.cert, credentials.key);
	auto client_context = std::make_shared<const TlsClientContext>();
	char buf[64];
	std::size_t n = 0;

	SUBCASE("close_notify") {
		SocketPair sockets;
		TlsSession server(server_context, sockets.server_fd);
		TlsSession client(client_context, sockets.client_fd, "localhost");
		complete_handshake(client, server);
		CHECK(client.close_notify() == IoStatus::ok);
		CHECK(server.read(buf, sizeof buf, n) == IoStatus::closed);
		CHECK(server.last_error() == "TLS read: peer sent close_notify");
	}
	SUBCASE("socket closed without close_notify") {
		SocketPair sockets;
		TlsSession server(server_context, sockets.server_fd);
		{
			TlsSession client(client_context, sockets.client_fd, "localhost");
			complete_handshake(client, server);
		}
		::close(sockets.client_fd);
		sockets.client_fd = -1;
		CHECK(server.read(buf, sizeof buf, n) == IoStatus::closed);
		CHECK(server.last_error() == "TLS read: connection closed by peer");
	}
	SUBCASE("garbage instead of a ClientHello fails the handshake") {
		SocketPair sockets;
		TlsSession server(server_context, sockets.server_fd);
		std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
		REQUIRE(::send(sockets.client_fd, junk.data(), junk.size(), 0) == static_cast<ssize_t>(junk.size()));
		IoStatus status = server.handshake();
		CHECK(status == IoStatus::error);
		CHECK(server.last_error().rfind("TLS handshake: SSL - ", 0) == 0);
	}
}

TEST_CASE("client context with a CA file verifies the peer against the SNI name") {
	Credentials credentials;
	auto server_context = std::make_shared<const TlsServerContext>(credentials.cert, credentials.key);
	// The self-signed certificate is its own trust anchor.
	auto client_context = std::make_shared<const TlsClientContext>(credentials.cert);

	SUBCASE("matching name") {
		SocketPair sockets;
		TlsSession server(server_context, sockets.server_fd);
		TlsSession client(client_context, sockets.client_fd, "localhost");
		complete_handshake(client, server);
		CHECK(client.peer_verify_error() == "");
	}
	SUBCASE("other name: handshake completes, verification reports the mismatch") {
		SocketPair sockets;
		TlsSession server(server_context, sockets.server_fd);
		TlsSession client(client_context, sockets.client_fd, "mx.example.net");
		complete_handshake(client, server);
		CHECK(client.peer_verify_error().find("Common Name") != std::string::npos);
	}
	CHECK_THROWS_AS(TlsClientContext{credentials.dir.path + "/missing-ca.pem"}, std::runtime_error);
}

TEST_CASE("loading broken or missing certificate and key files throws naming the file") {
	Credentials credentials;
	Credentials other;
	const std::string& dir = credentials.dir.path;
	auto message_of = [](auto&& load) -> std::string {
		try {
			load();
		} catch (const std::runtime_error& e) {
			return e.what();
		}
		return "no exception";
	};

	std::string missing_cert = dir + "/nope/cert.pem";
	std::string text = message_of([&] { TlsServerContext{missing_cert, credentials.key}; });
	INFO(text);
	// The form of every config error: "<file>: <key.path>: <what is wrong>".
	CHECK(text == missing_cert + ": tls.cert_file: cannot open: No such file or directory");

	std::string missing_key = dir + "/nope/key.pem";
	text = message_of([&] { TlsServerContext{credentials.cert, missing_key}; });
	CHECK(text == missing_key + ": tls.key_file: cannot open: No such file or directory");

	std::string broken_key = dir + "/broken-key.pem";
	write_file(broken_key, "-----BEGIN EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END EC PRIVATE KEY-----\n");
	text = message_of([&] { TlsServerContext{credentials.cert, broken_key}; });
	CHECK(text.rfind(broken_key + ": tls.key_file: not a PEM private key: PK - ", 0) == 0);

	std::string broken_cert = dir + "/broken-cert.pem";
	write_file(broken_cert, "this is not a certificate\n");
	text = message_of([&] { TlsServerContext{broken_cert, credentials.key}; });
	CHECK(text.rfind(broken_cert + ": tls.cert_file: not a PEM certificate chain: X509 - ", 0) == 0);

	// Another certificate's key.
	text = message_of([&] { TlsServerContext{credentials.cert, other.key}; });
	CHECK(text.rfind(other.key + ": tls.key_file: does not match the certificate in " + credentials.cert, 0) == 0);

	// The good pair still loads.
	CHECK_NOTHROW(TlsServerContext{credentials.cert, credentials.key});
}
