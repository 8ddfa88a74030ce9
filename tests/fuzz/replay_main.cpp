// Replays saved inputs through one fuzz target without libFuzzer, so that
// `make check` runs the corpus and the regression inputs with the ordinary
// compiler (README.md "Benchmarks and fuzzing"). Each argument is a file or
// a directory whose regular files are all replayed, in name order. A target
// that breaks an invariant aborts, which fails the run; otherwise prints
// "<n> inputs replayed" and exits 0.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool read_file(const std::filesystem::path& path, std::string& out) {
	std::ifstream in(path, std::ios::binary);
	if (!in) return false;
	out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
	return !in.bad();
}

}  // namespace

int main(int argc, char** argv) {
	std::vector<std::filesystem::path> inputs;
	for (int i = 1; i < argc; i++) {
		std::filesystem::path arg(argv[i]);
		std::error_code ec;
		if (std::filesystem::is_directory(arg, ec)) {
			for (const auto& entry : std::filesystem::directory_iterator(arg, ec))
				if (entry.is_regular_file()) inputs.push_back(entry.path());
			if (ec) {
				std::fprintf(stderr, "%s: %s\n", argv[i], ec.message().c_str());
				return 2;
			}
		} else if (std::filesystem::is_regular_file(arg, ec)) {
			inputs.push_back(arg);
		} else {
			std::fprintf(stderr, "%s: no such file or directory\n", argv[i]);
			return 2;
		}
	}
	std::sort(inputs.begin(), inputs.end());
	for (const auto& path : inputs) {
		std::string data;
		if (!read_file(path, data)) {
			std::fprintf(stderr, "%s: cannot read\n", path.c_str());
			return 2;
		}
		// Printed before the call so that an abort names its input.
		std::fprintf(stderr, "replaying %s\n", path.c_str());
		LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size());
	}
	std::printf("%zu inputs replayed\n", inputs.size());
	return 0;
}
