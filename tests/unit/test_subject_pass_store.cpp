// Subject-pass per account (src/store/subject_pass): the key is made once
// and kept; a token offered for a From address is honoured within the
// account's period, for that address only.
#include <doctest/doctest.h>

#include "store/subject_pass.h"
#include "unit/files.h"

using namespace tern;
using tern::testing::TempDir;
using tern::testing::write_file;

TEST_CASE("subject-pass: the verdict's input from the account's key, period and the message") {
	TempDir dir;
	store::Env env(dir.path);
	auto cfg = config::Config::load_text(R"({"hostname": "mx.example.org", "data_dir": ")" + dir.path +
	                                         R"(", "domains": {"example.org": {}},
	        "accounts": {"alice": {"domain": "example.org", "subject_pass": {"period_s": 43200}},
	                     "bob": {"domain": "example.org"}}})",
	                                     "test.json", dir.path);
	const config::Account& alice = cfg->accounts.at("alice");
	CHECK(alice.subject_pass_period_s == 43200);
	std::string key = store::subject_pass_key(env, "alice");
	CHECK(key.size() == 32);
	CHECK(store::subject_pass_key(env, "alice") == key);
	CHECK(store::subject_pass_key(env, "bob") != key);

	int64_t now = 1700000000;
	std::string file = dir.path + "/msg";
	write_file(file, "From: Sender <Someone@Sender.Example>\r\nSubject: hello\r\n\r\nbody\r\n");
	auto first = store::subject_pass_facts(&env, alice, file, now);
	CHECK(first.configured);
	CHECK_FALSE(first.token_valid);
	REQUIRE(first.new_token.size() == 22);
	CHECK_FALSE(store::subject_pass_facts(&env, cfg->accounts.at("bob"), file, now).configured);

	// The sender resends with the token in the subject (RFC 2047 encoded, even).
	std::string q_token = first.new_token;  // RFC 2047 4.2: "_" stands for a space in Q, so it is =5F
	for (size_t p; (p = q_token.find('_')) != std::string::npos;) q_token.replace(p, 1, "=5F");
	write_file(file,
	           "From: Someone@sender.example\r\nSubject: =?UTF-8?Q?hello_=28pass:" + q_token +
	               "=29?=\r\n\r\nbody\r\n");
	CHECK(store::subject_pass_facts(&env, alice, file, now + 3600).token_valid);
	CHECK_FALSE(store::subject_pass_facts(&env, alice, file, now + 43200 + 512).token_valid);  // expired
	write_file(file, "From: other@sender.example\r\nSubject: hello (pass:" + first.new_token + ")\r\n\r\nbody\r\n");
	CHECK_FALSE(store::subject_pass_facts(&env, alice, file, now + 60).token_valid);  // another sender
	write_file(file, "Subject: hello (pass:" + first.new_token + ")\r\n\r\nbody\r\n");
	CHECK_FALSE(store::subject_pass_facts(&env, alice, file, now + 60).configured);  // no From
	CHECK_FALSE(store::subject_pass_facts(nullptr, alice, file, now).configured);
}

TEST_CASE("config: junk_filter, subject_pass and report destination keys, with key-path errors") {
	auto load = [](const std::string& account_extra, const std::string& dest_extra = "") {
		return config::Config::load_text(R"({"hostname": "mx.example.org", "domains": {"example.org": {}},
		    "accounts": {"alice": {"domain": "example.org", "destinations": {"a@example.org": {)" +
		                                     dest_extra + "}}" + account_extra + "}}}",
		                                 "t.json", "/tmp");
	};
	auto cfg = load(R"(, "junk_filter": {"threshold": 0.8, "top_words": 5, "ignore_words": 0.2, "rare_words": 1,
	                    "max_power": 0.05})",
	                R"("dmarc_reports": true, "tls_reports": true)");
	const config::Account& a = cfg->accounts.at("alice");
	REQUIRE(a.junk_filter);
	CHECK(a.junk_filter->threshold == 0.8);
	CHECK(a.junk_filter->params.top_words == 5);
	CHECK(a.junk_filter->params.ignore_band == 0.2);
	CHECK(a.junk_filter->params.rare_words == 1);
	CHECK(a.junk_filter->params.max_power == 0.05);
	CHECK(a.destinations.at("a@example.org").dmarc_reports);
	CHECK(a.destinations.at("a@example.org").tls_reports);
	CHECK_FALSE(load("")->accounts.at("alice").junk_filter);
	CHECK(load(R"(, "junk_filter": {})")->accounts.at("alice").junk_filter->threshold == 0.95);

	auto error = [&](const std::string& account_extra, const std::string& dest_extra = "") {
		try {
			load(account_extra, dest_extra);
		} catch (const config::ConfigError& e) {
			return e.path + ": " + e.message;
		}
		return std::string("no error");
	};
	CHECK(error(R"(, "junk_filter": {"threshold": 1.5})") ==
	      "accounts.alice.junk_filter.threshold: must be between 0 and 1");
	CHECK(error(R"(, "junk_filter": {"threshold": "high"})") ==
	      "accounts.alice.junk_filter.threshold: expected a number");
	CHECK(error(R"(, "junk_filter": {"top_words": 0})") ==
	      "accounts.alice.junk_filter.top_words: must be positive");
	CHECK(error(R"(, "junk_filter": {"ignore_words": 0.5})") ==
	      "accounts.alice.junk_filter.ignore_words: must be below 0.5 (it is a band around 0.5)");
	CHECK(error(R"(, "junk_filter": {"max_power": 0})") ==
	      "accounts.alice.junk_filter.max_power: must be above 0 and below 0.5");
	CHECK(error(R"(, "junk_filter": {"onegrams": true})") == "accounts.alice.junk_filter.onegrams: unknown key");
	CHECK(error(R"(, "subject_pass": {"period_s": -1})") ==
	      "accounts.alice.subject_pass.period_s: must not be negative");
	CHECK(error(R"(, "subject_pass": {"period": "12h"})") == "accounts.alice.subject_pass.period: unknown key");
	CHECK(error("", R"("dmarc_reports": "yes")") ==
	      "accounts.alice.destinations.a@example.org.dmarc_reports: expected a boolean");
}
