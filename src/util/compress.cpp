#include "util/compress.h"

#include <zip.h>
#include <zlib.h>

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

std::optional<std::string> unzip_first_file(std::string_view data, size_t max_output) {
	zip_error_t error;
	zip_error_init(&error);
	zip_source_t* src = zip_source_buffer_create(data.data(), data.size(), 0, &error);
	if (!src) return std::nullopt;
	zip_t* archive = zip_open_from_source(src, ZIP_RDONLY, &error);
	if (!archive) {
		zip_source_free(src);
		return std::nullopt;
	}
	std::unique_ptr<zip_t, void (*)(zip_t*)> guard(archive, zip_discard);
	zip_int64_t n = zip_get_num_entries(archive, 0);
	for (zip_int64_t i = 0; i < n; ++i) {
		zip_stat_t st;
		if (zip_stat_index(archive, i, 0, &st) != 0) continue;
		std::string_view name = st.name ? st.name : "";
		if (name.empty() || name.back() == '/') continue;  // a folder
		zip_file_t* f = zip_fopen_index(archive, i, 0);
		if (!f) return std::nullopt;
		std::string out;
		char buf[16384];
		zip_int64_t got;
		while ((got = zip_fread(f, buf, sizeof buf)) > 0) {
			out.append(buf, static_cast<size_t>(got));
			if (out.size() > max_output) break;
		}
		zip_fclose(f);
		if (got < 0 || out.size() > max_output) return std::nullopt;
		return out;
	}
	return std::nullopt;
}

}  // namespace tern
