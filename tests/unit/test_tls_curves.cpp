// The ECDHE groups tern's TLS client offers, read from the bytes of its
// ClientHello: the supported_groups extension (RFC 8422 5.1.1, code points
// of RFC 8422 / RFC 8446 4.2.7) lists X25519, secp256r1, secp384r1 and
// secp521r1 in that order, so a server that follows the client's order
// picks X25519. No network: the other end of a socketpair reads the bytes.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "net/tls.h"

using namespace tern::net;

namespace {

constexpr uint16_t group_x25519 = 0x001d;
constexpr uint16_t group_secp256r1 = 0x0017;
constexpr uint16_t group_secp384r1 = 0x0018;
constexpr uint16_t group_secp521r1 = 0x0019;
constexpr uint16_t extension_supported_groups = 0x000a;

// Reads big-endian fields from the ClientHello, failing the test (not
// reading past the end) on truncated data.
struct Reader {
	const std::string& bytes;
	size_t pos = 0;
	bool ok = true;

	uint32_t number(size_t width) {
		if (pos + width > bytes.size()) {
			ok = false;
			return 0;
		}
		uint32_t n = 0;
		for (size_t i = 0; i < width; i++) n = (n << 8) | static_cast<unsigned char>(bytes[pos + i]);
		pos += width;
		return n;
	}
	void skip(size_t n) {
		if (pos + n > bytes.size())
			ok = false;
		else
			pos += n;
	}
};

// The supported_groups list of the ClientHello in one TLS record
// (RFC 5246 6.2.1, 7.4.1.2), or an empty list.
std::vector<uint16_t> offered_groups(const std::string& record) {
	Reader r{record};
	if (r.number(1) != 22)  // handshake record
		return {};
	r.skip(2 + 2);         // record version, length
	if (r.number(1) != 1)  // client_hello
		return {};
	r.skip(3 + 2 + 32);   // handshake length, client_version, random
	r.skip(r.number(1));  // session_id
	r.skip(r.number(2));  // cipher_suites
	r.skip(r.number(1));  // compression_methods
	size_t extensions_end = r.number(2) + r.pos;
	while (r.ok && r.pos < extensions_end) {
		uint16_t type = static_cast<uint16_t>(r.number(2));
		size_t length = r.number(2);
		if (type != extension_supported_groups) {
			r.skip(length);
			continue;
		}
		std::vector<uint16_t> groups;
		size_t list_end = r.number(2) + r.pos;
		while (r.ok && r.pos < list_end) groups.push_back(static_cast<uint16_t>(r.number(2)));
		return r.ok ? groups : std::vector<uint16_t>{};
	}
	return {};
}

}  // namespace

TEST_CASE("tls client: the ClientHello offers X25519, then P-256, P-384, P-521") {
	int fds[2];
	REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
	{
		auto context = std::make_shared<const TlsClientContext>();
		TlsSession client(context, fds[0], "mx.example.net");
		// The first step writes the ClientHello and waits for the server.
		CHECK(client.handshake() == IoStatus::want_read);
		std::string hello(16384, '\0');
		ssize_t n = ::read(fds[1], hello.data(), hello.size());
		REQUIRE(n > 0);
		hello.resize(static_cast<size_t>(n));
		std::vector<uint16_t> expected = {group_x25519, group_secp256r1, group_secp384r1, group_secp521r1};
		CHECK(offered_groups(hello) == expected);
	}
	::close(fds[0]);
	::close(fds[1]);
}
