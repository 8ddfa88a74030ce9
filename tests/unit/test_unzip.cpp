// unzip_first_file (util/compress.h) on archives made by Info-ZIP's zip(1),
// not by our own writer: a folder before the file, a deflated member, and a
// member streamed from standard input (Zip64 local header, sizes in the
// central directory only).
#include <doctest/doctest.h>

#include <string>

#include "util/base64.h"
#include "util/compress.h"

using tern::unzip_first_file;

namespace {

// `zip -X a.zip dir/ dir/r.xml`, r.xml being "hello report\n" 50 times.
const char* folder_then_deflated =
    "UEsDBAoAAAAAACxwg10AAAAAAAAAAAAAAAAEAAAAZGlyL1BLAwQUAAAACAAscINd+LOMpxYAAACKAgAACQAAAGRpci9yLnhtbMtIzcnJVyhK"
    "LcgvKuHKGOWMcgaKAwBQSwECHgMKAAAAAAAscINdAAAAAAAAAAAAAAAABAAAAAAAAAAAABAA7UEAAAAAZGlyL1BLAQIeAxQAAAAIACxwg134"
    "s4ynFgAAAIoCAAAJAAAAAAAAAAEAAACkgSIAAABkaXIvci54bWxQSwUGAAAAAAIAAgBpAAAAXwAAAAAA";
// `printf 'streamed\n' | zip -X - -`.
const char* streamed =
    "UEsDBC0AAAAAACxwg11qFLXm//////////8BABQALQEAEAAJAAAAAAAAAAkAAAAAAAAAc3RyZWFtZWQKUEsBAh4DLQAAAAAALHCDXWoUteYJ"
    "AAAACQAAAAEAAAAAAAAAAQAAAIARAAAAAC1QSwYGLAAAAAAAAAAeAy0AAAAAAAAAAAABAAAAAAAAAAEAAAAAAAAALwAAAAAAAAA8AAAAAAAA"
    "AFBLBgcAAAAAawAAAAAAAAABAAAAUEsFBgAAAAABAAEALwAAADwAAAAAAA==";

std::string bytes(const char* b64) { return tern::base64_decode(b64).value(); }

std::string repeated(const std::string& s, int n) {
	std::string out;
	for (int i = 0; i < n; i++) out += s;
	return out;
}

}  // namespace

TEST_CASE("unzip_first_file reads zip(1)'s archives") {
	CHECK(unzip_first_file(bytes(folder_then_deflated), 1000).value() == repeated("hello report\n", 50));
	CHECK(unzip_first_file(bytes(streamed), 1000).value() == "streamed\n");
}

TEST_CASE("unzip_first_file refuses what is too large, damaged or cut") {
	std::string zip = bytes(folder_then_deflated);
	CHECK_FALSE(unzip_first_file(zip, 649));  // the file is 650 bytes
	std::string damaged = zip;
	damaged[0x5a] ^= 0x55;  // inside the deflated data
	CHECK_FALSE(unzip_first_file(damaged, 1000));
	std::string bad_crc = bytes(streamed);
	bad_crc[0x33] ^= 1;  // the stored data ("s" of "streamed"): the CRC-32 no longer matches
	CHECK_FALSE(unzip_first_file(bad_crc, 1000));
	for (size_t cut : {size_t(0), size_t(10), size_t(60), zip.size() - 23, zip.size() - 1})
		CHECK_FALSE(unzip_first_file(zip.substr(0, cut), 1000));
	CHECK_FALSE(unzip_first_file(std::string(100, '\0'), 1000));
}
