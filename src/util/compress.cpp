#include "util/compress.h"

#include <zlib.h>

#include <cstdint>
#include <memory>

namespace tern {

std::optional<std::string> gunzip(std::string_view data, size_t max_output) {
	z_stream z{};
	// 15 window bits + 32: detect gzip or zlib headers.
	if (inflateInit2(&z, 15 + 32) != Z_OK) return std::nullopt;
	std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, inflateEnd);
	z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
	z.avail_in = static_cast<uInt>(data.size());
	std::string out;
	char buf[16384];
	for (;;) {
		z.next_out = reinterpret_cast<Bytef*>(buf);
		z.avail_out = sizeof buf;
		int rc = inflate(&z, Z_NO_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END) return std::nullopt;
		out.append(buf, sizeof buf - z.avail_out);
		if (out.size() > max_output) return std::nullopt;
		if (rc == Z_STREAM_END) return out;
		if (z.avail_in == 0 && z.avail_out != 0) return std::nullopt;  // truncated
	}
}

namespace {

// Little-endian fields of the zip format (APPNOTE.TXT 4.3).
uint32_t le16(std::string_view d, size_t at) { return uint32_t(uint8_t(d[at])) | uint32_t(uint8_t(d[at + 1])) << 8; }
uint32_t le32(std::string_view d, size_t at) { return le16(d, at) | le16(d, at + 2) << 16; }

// One member as the central directory describes it.
struct ZipMember {
	uint32_t flags = 0, method = 0, crc = 0, compressed = 0, size = 0, local_header = 0;
	std::string_view name;
};

constexpr uint32_t end_signature = 0x06054b50, central_signature = 0x02014b50, local_signature = 0x04034b50;
constexpr size_t end_size = 22, central_size = 46, local_size = 30;

// The end of central directory record: the last one, before at most 64 KiB
// of archive comment (APPNOTE 4.3.16).
std::optional<size_t> find_end_record(std::string_view d) {
	if (d.size() < end_size) return std::nullopt;
	size_t lowest = d.size() > end_size + 0xffff ? d.size() - end_size - 0xffff : 0;
	for (size_t at = d.size() - end_size + 1; at-- > lowest;)
		if (le32(d, at) == end_signature) return at;
	return std::nullopt;
}

// The bytes of a member's data, or nullopt when its local header does not
// fit in the archive.
std::optional<std::string_view> member_data(std::string_view d, const ZipMember& m) {
	size_t at = m.local_header;
	if (at + local_size > d.size() || le32(d, at) != local_signature) return std::nullopt;
	size_t start = at + local_size + le16(d, at + 26) + le16(d, at + 28);
	if (start > d.size() || d.size() - start < m.compressed) return std::nullopt;
	return d.substr(start, m.compressed);
}

// Stored or deflated data (APPNOTE 4.4.5), checked against the central
// directory's size and CRC-32.
std::optional<std::string> extract(std::string_view data, const ZipMember& m, size_t max_output) {
	if (m.size > max_output || (m.flags & 1) != 0) return std::nullopt;  // too large, or encrypted
	std::string out;
	if (m.method == 0) {
		out.assign(data);
	} else if (m.method == 8) {
		z_stream z{};
		if (inflateInit2(&z, -15) != Z_OK) return std::nullopt;  // raw deflate, no zlib header
		std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, inflateEnd);
		out.resize(m.size);
		z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
		z.avail_in = static_cast<uInt>(data.size());
		z.next_out = reinterpret_cast<Bytef*>(out.data());
		z.avail_out = static_cast<uInt>(out.size());
		if (inflate(&z, Z_FINISH) != Z_STREAM_END) return std::nullopt;  // broken, or more than m.size
		out.resize(z.total_out);
	} else {
		return std::nullopt;
	}
	uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(out.data()), static_cast<uInt>(out.size()));
	if (out.size() != m.size || crc != m.crc) return std::nullopt;
	return out;
}

}  // namespace

// The zip format's central directory lists the members (APPNOTE.TXT 4.3.12);
// reports are small, so Zip64 archives (over 4 GiB or 65,535 members) are
// refused like broken ones.
std::optional<std::string> unzip_first_file(std::string_view d, size_t max_output) {
	auto end = find_end_record(d);
	if (!end) return std::nullopt;
	size_t count = le16(d, *end + 10), at = le32(d, *end + 16);
	for (size_t i = 0; i < count; ++i) {
		if (at + central_size > d.size() || le32(d, at) != central_signature) return std::nullopt;
		ZipMember m;
		m.flags = le16(d, at + 8);
		m.method = le16(d, at + 10);
		m.crc = le32(d, at + 16);
		m.compressed = le32(d, at + 20);
		m.size = le32(d, at + 24);
		size_t name_len = le16(d, at + 28), extra_len = le16(d, at + 30), comment_len = le16(d, at + 32);
		m.local_header = le32(d, at + 42);
		if (at + central_size + name_len > d.size()) return std::nullopt;
		m.name = d.substr(at + central_size, name_len);
		at += central_size + name_len + extra_len + comment_len;
		if (m.name.empty() || m.name.back() == '/') continue;  // a folder
		auto data = member_data(d, m);
		if (!data) return std::nullopt;
		return extract(*data, m, max_output);
	}
	return std::nullopt;
}

}  // namespace tern
