// The base configuration of every test that runs a real server: the
// black-box daemon (helpers/daemon.h) and the session-dialogue tier
// (tests/session/harness.h). A key every config needs is added here, once.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace tern::testing {

// The listener "test" on 127.0.0.1 with a service per port that is not 0.
// First-time senders are not delayed on port 25, so tests run at speed.
inline nlohmann::json test_listener(int smtp_port, int submission_port = 0, int submissions_port = 0) {
	nlohmann::json listener = {{"ips", {"127.0.0.1"}}};
	if (smtp_port) listener["smtp"] = {{"enabled", true}, {"port", smtp_port}, {"first_time_sender_delay_ms", 0}};
	if (submission_port) listener["submission"] = {{"enabled", true}, {"port", submission_port}};
	if (submissions_port) listener["submissions"] = {{"enabled", true}, {"port", submissions_port}};
	return listener;
}

struct BaseTestConfig {
	std::string data_dir;
	std::string dns_server;  // "ip:port": the loopback DNS test server
	std::string log_level = "debug";
	nlohmann::json listener = test_listener(25);
};

// hostname mx.test.example; the domain test.example with the account alice
// (alice@test.example, also postmaster); the delays for bad clients off.
inline nlohmann::json base_test_config(const BaseTestConfig& base) {
	return {
	    {"hostname", "mx.test.example"},
	    {"data_dir", base.data_dir},
	    {"log", {{"level", base.log_level}}},
	    {"dns", {{"servers", {base.dns_server}}, {"timeout_ms", 2000}}},
	    {"delays_ms", {{"bad_client", 0}, {"auth_fail", 0}, {"unknown_recipients", 0}}},
	    {"listeners", {{"test", base.listener}}},
	    {"domains", {{"test.example", nlohmann::json::object()}}},
	    {"accounts",
	     {{"alice",
	       {{"domain", "test.example"}, {"destinations", {{"alice@test.example", {{"mailbox", "INBOX"}}}}}}}}},
	    {"postmaster", {{"account", "alice"}}},
	};
}

}  // namespace tern::testing
