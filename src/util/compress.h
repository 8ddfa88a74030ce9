// Decompression for report attachments (gzip, zip), with a cap on the output
// so that a small hostile attachment cannot inflate into gigabytes.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace tern {

// A gzip (RFC 1952) or zlib stream; nullopt when it is broken or would
// exceed max_output bytes.
std::optional<std::string> gunzip(std::string_view data, size_t max_output);

// The first regular file of a zip archive; nullopt when there is none, the
// archive is broken, or the file would exceed max_output bytes.
std::optional<std::string> unzip_first_file(std::string_view data, size_t max_output);

}  // namespace tern
