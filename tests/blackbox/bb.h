// Shared includes and checks for the black-box test files.
#pragma once
#include <doctest/doctest.h>

#include "helpers/daemon.h"
#include "helpers/session.h"
#include "helpers/smtp_client.h"

#include <string>
#include <vector>

using namespace tern::testing;

// Lets failed CHECKs on reply lines show the lines.
namespace doctest {
template <>
struct StringMaker<std::vector<std::string>> {
	static String convert(const std::vector<std::string>& lines) {
		std::string out = "{";
		for (size_t i = 0; i < lines.size(); i++) out += (i ? ", \"" : "\"") + lines[i] + "\"";
		out += "}";
		return String(out.c_str());
	}
};
}  // namespace doctest

// Stops the test early, with the daemon's log, when it is not running.
#define REQUIRE_RUNNING(daemon) REQUIRE_MESSAGE((daemon).running(), (daemon).error() << "\n" << log_tail(daemon))

// The last few KB of the daemon's log, for failure messages.
inline std::string log_tail(const TernDaemon& daemon, size_t max = 4000) {
	std::string log = daemon.log_text();
	return log.size() > max ? "…" + log.substr(log.size() - max) : log;
}
