// logfmt logger: line format, quoting, levels, file sink and reopen.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "util/log.h"
#include "unit/files.h"

namespace log = tern::log;
using log::Level;

namespace {

using tern::testing::read_file;
using tern::testing::TempDir;
using tern::testing::write_file;

}  // namespace

TEST_CASE("log: format_line basics") {
	CHECK(log::format_line("2026-11-25T17:22:09.123Z", Level::info, 0x1a2b, "new connection",
	                       {{"remote", "127.0.0.1:5555"}}) ==
	      "ts=2026-11-25T17:22:09.123Z level=info cid=1a2b msg=\"new connection\" remote=127.0.0.1:5555");
	// cid 0: no cid field; no ts: no ts field.
	CHECK(log::format_line("", Level::error, 0, "boom", {}) == "level=error msg=boom");
	CHECK(log::format_line("", Level::debug, 255, "x", {{"a", "1"}, {"b", "2"}}) ==
	      "level=debug cid=ff msg=x a=1 b=2");
}

TEST_CASE("log: values are quoted and escaped when needed") {
	auto value_of = [](std::string v) {
		std::string line = log::format_line("", Level::info, 0, "m", {{"k", v}});
		return line.substr(std::string("level=info msg=m k=").size());
	};
	CHECK(value_of("plain") == "plain");
	CHECK(value_of("") == "\"\"");
	CHECK(value_of("two words") == "\"two words\"");
	CHECK(value_of("a=b") == "\"a=b\"");
	CHECK(value_of("say \"hi\"") == "\"say \\\"hi\\\"\"");
	CHECK(value_of("back\\slash") == "back\\slash");          // no quoting needed
	CHECK(value_of("back\\ slash") == "\"back\\\\ slash\"");  // escaped inside quotes
	CHECK(value_of("RC: MAIL\r\n") == "\"RC: MAIL\\x0d\\x0a\"");
	CHECK(value_of("esc\x1b[0m") == "\"esc\\x1b[0m\"");
	CHECK(value_of("del\x7f") == "\"del\\x7f\"");
	CHECK(value_of("caf\xc3\xa9") == "caf\xc3\xa9");  // UTF-8 stays as-is
	CHECK(value_of("\xf0\x9f\x93\xa7 mail") == "\"\xf0\x9f\x93\xa7 mail\"");
	// Bytes that are no UTF-8 are escaped, so that every line is valid UTF-8:
	// Latin-1, a lone continuation byte, a truncated sequence, an overlong
	// form, a surrogate.
	CHECK(value_of("caf\xe9") == "\"caf\\xe9\"");
	CHECK(value_of("\x80x") == "\"\\x80x\"");
	CHECK(value_of("ab\xc3") == "\"ab\\xc3\"");
	CHECK(value_of("\xc0\xaf") == "\"\\xc0\\xaf\"");
	CHECK(value_of("\xed\xa0\x80") == "\"\\xed\\xa0\\x80\"");
	CHECK(value_of("\xe9\xc3\xa9") == "\"\\xe9\xc3\xa9\"");  // the valid sequence after it stays
	// Valid UTF-8 that a terminal does not show but obeys: a C1 control
	// (U+009B, CSI) and a right-to-left override (U+202E) that would show
	// "user=admin" reversed. Escaped byte by byte, and the value quoted.
	CHECK(value_of("a\xc2\x9b"
	               "2Jb") == "\"a\\xc2\\x9b2Jb\"");
	CHECK(value_of("x\xe2\x80\xaenimda") == "\"x\\xe2\\x80\\xaenimda\"");
	CHECK(value_of("\xe2\x81\xa6iso\xe2\x81\xa9") == "\"\\xe2\\x81\\xa6iso\\xe2\\x81\\xa9\"");
	CHECK(value_of("\xe2\x80\x94"
	               "dash") ==
	      "\xe2\x80\x94"
	      "dash");  // U+2014, a visible character, stays
}

TEST_CASE("log: level names and enabled()") {
	Level l = Level::info;
	CHECK(log::parse_level("tracedata", l));
	CHECK(l == Level::tracedata);
	CHECK(log::parse_level("error", l));
	CHECK(l == Level::error);
	CHECK(log::parse_level("traceauth", l));
	CHECK(l == Level::traceauth);
	CHECK_FALSE(log::parse_level("verbose", l));
	CHECK_FALSE(log::parse_level("INFO", l));
	CHECK_FALSE(log::parse_level("warn", l));  // shown with info, not a level to select
	CHECK(l == Level::traceauth);              // unchanged on failure
	CHECK(log::level_name(Level::debug) == "debug");
	CHECK(log::level_name(Level::trace) == "trace");
	CHECK(log::level_name(Level::warn) == "warn");

	Level saved = log::level();
	log::set_level(Level::info);
	CHECK(log::level() == Level::info);
	CHECK(log::enabled(Level::error));
	CHECK(log::enabled(Level::warn));
	CHECK(log::enabled(Level::info));
	CHECK_FALSE(log::enabled(Level::debug));
	CHECK_FALSE(log::enabled(Level::tracedata));
	log::set_level(Level::trace);
	CHECK(log::enabled(Level::trace));
	CHECK_FALSE(log::enabled(Level::traceauth));
	log::set_level(saved);
}

TEST_CASE("log: file sink, level filter and reopen") {
	tern::testing::TempDir temp;
	const std::string& dir = temp.path;
	std::string path = dir + "/ternd.log";

	CHECK_FALSE(log::set_sink(log::Sink::file, dir + "/missing/dir/x.log"));
	// Put back (stderr, the level before) however the test leaves.
	tern::testing::LogToFile to_file(path, Level::info);
	log::event(Level::info, 0x2a, "hello world", {{"n", "1"}});
	log::event(Level::debug, 0x2a, "filtered out", {});
	log::error("bad thing", {{"error", "x y"}});

	std::string content = read_file(path);
	// "ts=YYYY-MM-DDTHH:MM:SS.mmmZ" is 27 chars, then " level=...".
	auto first_nl = content.find('\n');
	REQUIRE(first_nl != std::string::npos);
	std::string first = content.substr(0, first_nl);
	REQUIRE(first.size() > 27);
	CHECK(first.substr(0, 3) == "ts=");
	CHECK(first[13] == 'T');
	CHECK(first[10] == '-');
	CHECK(first[22] == '.');
	CHECK(first[26] == 'Z');
	CHECK(first.substr(27) == " level=info cid=2a msg=\"hello world\" n=1");
	std::string second = content.substr(first_nl + 1);
	CHECK(second.substr(27) == " level=error msg=\"bad thing\" error=\"x y\"\n");
	CHECK(content.find("filtered out") == std::string::npos);

	// Rotation: rename the file, reopen, new lines go to a fresh file.
	std::string rotated = path + ".1";
	REQUIRE(std::rename(path.c_str(), rotated.c_str()) == 0);
	log::info("before reopen");
	CHECK(log::reopen());
	log::info("after reopen");
	CHECK(read_file(rotated).find("msg=\"before reopen\"") != std::string::npos);
	std::string fresh = read_file(path);
	CHECK(fresh.find("msg=\"after reopen\"") != std::string::npos);
	CHECK(fresh.find("before reopen") == std::string::npos);

	// Lines from several threads never interleave.
	{
		std::vector<std::thread> threads;
		for (int t = 0; t < 4; ++t)
			threads.emplace_back([t] {
				for (int i = 0; i < 200; ++i)
					log::event(Level::info, static_cast<uint64_t>(t + 1), "concurrent line",
					           {{"i", std::to_string(i)}});
			});
		for (auto& th : threads) th.join();
	}
	std::istringstream lines(read_file(path));
	std::string line;
	int count = 0;
	while (std::getline(lines, line)) {
		if (line.find("concurrent line") == std::string::npos) continue;
		++count;
		CHECK(line.find("level=info cid=") == 28);
		CHECK(line.find("ts=", 1) == std::string::npos);
	}
	CHECK(count == 800);

	// Reopen failure (the directory is gone): keep the old file, say so there.
	std::string moved_dir = dir + ".moved";
	REQUIRE(std::rename(dir.c_str(), moved_dir.c_str()) == 0);
	CHECK_FALSE(log::reopen());
	log::info("still logging");
	std::string old_file = read_file(moved_dir + "/ternd.log");
	CHECK(old_file.find("level=error msg=\"cannot reopen log file\" path=" + path +
	                    " error=\"No such file or directory\"\n") != std::string::npos);
	CHECK(old_file.find("msg=\"still logging\"") != std::string::npos);
	REQUIRE(std::rename(moved_dir.c_str(), dir.c_str()) == 0);

	REQUIRE(log::set_sink(log::Sink::stderr_sink));
	CHECK(log::reopen());  // no-op for stderr
}

TEST_CASE("RepeatedEvent: an error line for the first occurrence, then at most one per interval") {
	using tern::log::Level;
	tern::log::RepeatedEvent pauses(60);
	CHECK(pauses.occurred(1000.0) == Level::error);
	for (int i = 1; i <= 9; ++i) CHECK(pauses.occurred(1000.0 + 0.1 * i) == Level::debug);
	CHECK(pauses.occurred(1059.9) == Level::debug);
	CHECK(pauses.occurred(1060.0) == Level::error);
	CHECK(pauses.occurred(1060.1) == Level::debug);
	// Long quiet, then again: at once.
	CHECK(pauses.occurred(5000.0) == Level::error);
}
