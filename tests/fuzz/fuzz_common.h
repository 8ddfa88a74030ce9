// Shared bits of the libFuzzer targets (see README.md "Benchmarks and
// fuzzing"). Every target is a pure function of its input: no sockets, no
// files, no clocks, so any crash replays from the saved input alone.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace tern::fuzz {

// An invariant failed: print what and abort, so libFuzzer saves the input
// as a crash artifact. (assert() would vanish under -DNDEBUG.)
[[noreturn]] inline void invariant_failed(const char* file, int line, const char* what) {
	std::fprintf(stderr, "INVARIANT FAILED at %s:%d: %s\n", file, line, what);
	std::abort();
}

// Whether `s` holds a CR or LF that is not part of a CRLF pair: what the
// DATA and BDAT decoders must notice.
inline bool has_bare_newline(std::string_view s) {
	for (size_t i = 0; i < s.size(); i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return true;
		if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')) return true;
	}
	return false;
}

}  // namespace tern::fuzz

#define FUZZ_CHECK(condition)                                                                                          \
	do {                                                                                                           \
		if (!(condition)) ::tern::fuzz::invariant_failed(__FILE__, __LINE__, #condition);                      \
	} while (0)
