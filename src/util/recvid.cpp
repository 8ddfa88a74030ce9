// Received-id generator, see recvid.h.
#include "util/random.h"
#include "util/recvid.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <mbedtls/aes.h>

#include "util/base64.h"
#include "util/unique_fd.h"

namespace tern {

namespace {

using Block = std::array<unsigned char, 16>;

// One AES-128 block operation. The key schedule is set up per call (well
// under a microsecond) so the generator stays a copyable value that many
// threads may use at once.
Block aes_block(const std::array<unsigned char, 16>& key, const Block& in, bool encrypt) {
	mbedtls_aes_context ctx;
	mbedtls_aes_init(&ctx);
	int rc = encrypt ? mbedtls_aes_setkey_enc(&ctx, key.data(), 128)
			 : mbedtls_aes_setkey_dec(&ctx, key.data(), 128);
	Block out{};
	if (rc == 0)
		rc = mbedtls_aes_crypt_ecb(&ctx, encrypt ? MBEDTLS_AES_ENCRYPT : MBEDTLS_AES_DECRYPT, in.data(),
		                           out.data());
	mbedtls_aes_free(&ctx);
	if (rc != 0) throw std::runtime_error("received-id: AES failed");
	return out;
}

std::runtime_error io_error(const std::string& what, const std::string& path) {
	return std::runtime_error(what + " " + path + ": " + std::strerror(errno));
}

// Reads the whole (small) file; nullopt when it does not exist.
std::optional<std::string> read_key_file(const std::string& path) {
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd) {
		if (errno == ENOENT) return std::nullopt;
		throw io_error("open", path);
	}
	std::string data;
	char buf[64];
	for (;;) {
		ssize_t n = ::read(fd.get(), buf, sizeof buf);
		if (n < 0) {
			if (errno == EINTR) continue;
			throw io_error("read", path);  // errno read before the descriptor closes
		}
		if (n == 0) break;
		data.append(buf, static_cast<size_t>(n));
		if (data.size() > ReceivedIdGenerator::key_size) break;
	}
	if (data.size() != ReceivedIdGenerator::key_size)
		throw std::runtime_error("received-id key file " + path + ": must hold exactly 24 bytes");
	return data;
}

void fsync_parent_dir(const std::string& path) {
	auto slash = path.rfind('/');
	std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
	UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!fd) throw io_error("open directory", dir);
	if (::fsync(fd.get()) != 0) throw io_error("fsync directory", dir);
}

}  // namespace

ReceivedIdGenerator::ReceivedIdGenerator(std::string_view key24) {
	if (key24.size() != key_size) throw std::invalid_argument("received-id key must be 24 bytes");
	std::memcpy(aes_key_.data(), key24.data(), aes_key_.size());
	std::memcpy(prefix_.data(), key24.data() + aes_key_.size(), prefix_.size());
}

std::string ReceivedIdGenerator::id(uint64_t cid) const {
	// Block: [8 per-install bytes][cid, 8 bytes big-endian], as the model.
	Block block{};
	std::memcpy(block.data(), prefix_.data(), prefix_.size());
	for (int i = 0; i < 8; ++i) block[8 + i] = static_cast<unsigned char>(cid >> (56 - 8 * i));
	Block enc = aes_block(aes_key_, block, true);
	return base64url_encode_nopad(std::string_view(reinterpret_cast<const char*>(enc.data()), enc.size()));
}

std::optional<uint64_t> ReceivedIdGenerator::cid_of(std::string_view id) const {
	auto raw = base64url_decode_nopad(id);
	if (!raw || raw->size() != 16) return std::nullopt;
	Block in{};
	std::memcpy(in.data(), raw->data(), in.size());
	Block dec = aes_block(aes_key_, in, false);
	if (std::memcmp(dec.data(), prefix_.data(), prefix_.size()) != 0) return std::nullopt;
	uint64_t cid = 0;
	for (int i = 0; i < 8; ++i) cid = cid << 8 | dec[8 + i];
	return cid;
}

std::string ReceivedIdGenerator::load_or_create_key(const std::string& path) {
	if (auto existing = read_key_file(path)) return *existing;

	std::string key = random_bytes(key_size);
	std::string tmp = path + ".tmp." + std::to_string(::getpid());
	UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	if (!fd) throw io_error("create", tmp);
	// Removed on every way out but a rename into place; errno is read for
	// the exceptions below before it goes.
	TempFile tmp_file(tmp);
	size_t written = 0;
	while (written < key.size()) {
		ssize_t n = ::write(fd.get(), key.data() + written, key.size() - written);
		if (n < 0) {
			if (errno == EINTR) continue;
			throw io_error("write", tmp);
		}
		written += static_cast<size_t>(n);
	}
	if (::fsync(fd.get()) != 0) throw io_error("fsync", tmp);
	fd.reset();

	// link() instead of rename(): when two processes race to create the key,
	// the first one wins and the other reads its key, so both agree.
	if (::link(tmp.c_str(), path.c_str()) != 0) {
		if (errno == EEXIST) {
			tmp_file.remove();
			if (auto existing = read_key_file(path)) return *existing;
			throw std::runtime_error("received-id key file " + path + " vanished");
		}
		// File systems without hard links: rename is atomic too.
		if (::rename(tmp.c_str(), path.c_str()) != 0) throw io_error("rename to", path);
		tmp_file.commit();
	} else {
		tmp_file.remove();
	}
	fsync_parent_dir(path);
	return key;
}

}  // namespace tern
