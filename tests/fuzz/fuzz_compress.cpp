// Fuzzes the decompression of report attachments (util/compress.h): the
// zip reader and gunzip read hostile bytes from mail. Checks that neither
// crashes nor reads outside its input (ASan), and that what comes out never
// exceeds the cap the caller gave, whatever sizes the archive claims.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_common.h"
#include "util/compress.h"

using namespace tern;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	if (size < 2) return 0;
	// The first two bytes choose the cap (0 to 65535 bytes), so that inputs
	// both over and under their claimed sizes are reached.
	size_t cap = size_t(data[0]) | size_t(data[1]) << 8;
	std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
	if (auto out = unzip_first_file(input, cap)) FUZZ_CHECK(out->size() <= cap);
	if (auto out = gunzip(input, cap)) FUZZ_CHECK(out->size() <= cap);
	return 0;
}
