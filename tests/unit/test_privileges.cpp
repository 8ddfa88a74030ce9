// The files the daemon needs after its privilege drop (core/privileges.h),
// and the problems it reports, checked as this process.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/privileges.h"

using tern::config::Config;
using namespace tern::core;

namespace {

const FileNeed* find_need(const std::vector<FileNeed>& needs, const std::string& key) {
	for (const auto& n : needs)
		if (n.key == key) return &n;
	return nullptr;
}

}  // namespace

TEST_CASE("privileges: every file reopened after the drop is listed with its key and need") {
	auto cfg = Config::load_text(R"({"hostname": "mx.example.org", "data_dir": "/var/lib/tern", "user": "tern",
	  "log": {"file": "/var/log/tern/ternd.log"},
	  "tls": {"cert_file": "tls/cert.pem", "key_file": "tls/key.pem"},
	  "domains": {"example.org": {"dkim": {"selectors": {"s1": {"private_key_file": "dkim/s1.pem"},
	                                                     "old": {"private_key_file": "dkim/old.pem"}},
	                                       "sign": ["s1"]}}},
	  "accounts": {"alice": {"domain": "example.org"}}})",
	                             "/etc/tern/tern.json", "/etc/tern");
	auto needs = files_needed_after_drop(*cfg, "/run/tern/ternd.pid");

	const FileNeed* n = find_need(needs, "config file");
	REQUIRE(n);
	CHECK(n->path == "/etc/tern/tern.json");
	CHECK(n->need == Need::read);
	n = find_need(needs, "tls.key_file");
	REQUIRE(n);
	CHECK(n->path == "/etc/tern/tls/key.pem");
	CHECK_FALSE(n->may_be_missing);
	REQUIRE(find_need(needs, "tls.cert_file"));
	n = find_need(needs, "domains.example.org.dkim.selectors.s1.private_key_file");
	REQUIRE(n);
	CHECK(n->path == "/etc/tern/dkim/s1.pem");
	// A selector that does not sign is never loaded.
	CHECK_FALSE(find_need(needs, "domains.example.org.dkim.selectors.old.private_key_file"));
	n = find_need(needs, "data_dir");
	REQUIRE(n);
	CHECK(n->path == "/var/lib/tern/db");
	CHECK(n->need == Need::write_entries);
	CHECK(n->may_be_missing);
	n = find_need(needs, "accounts.alice.maildir");
	REQUIRE(n);
	CHECK(n->path == "/var/lib/tern/accounts/alice/Maildir");
	n = find_need(needs, "log.file");
	REQUIRE(n);
	CHECK(n->need == Need::write);
	CHECK(n->may_be_missing);
	n = find_need(needs, "pid_file");
	REQUIRE(n);
	CHECK(n->path == "/run/tern");
	CHECK(n->warning_only);
}

TEST_CASE("privileges: no TLS, no log file, no pid file: nothing of theirs is needed; localserve needs nothing") {
	auto cfg = Config::load_text(R"({"hostname": "mx.example.org"})", "/etc/tern/tern.json", "/etc/tern");
	auto needs = files_needed_after_drop(*cfg, "");
	CHECK_FALSE(find_need(needs, "tls.key_file"));
	CHECK_FALSE(find_need(needs, "log.file"));
	CHECK_FALSE(find_need(needs, "pid_file"));
	CHECK(find_need(needs, "config file"));
	auto local = Config::localserve_config("/tmp/tern-localserve-unit");
	CHECK(files_needed_after_drop(*local, "/tmp/x.pid").empty());
}

TEST_CASE("privileges: problems name the file, the key, the user and the reason; missing optional files are fine") {
	std::string dir = std::filesystem::temp_directory_path() / "tern-unit-privXXXXXX";
	REQUIRE(mkdtemp(dir.data()));
	std::string present = dir + "/present.pem";
	std::ofstream(present) << "x";
	std::vector<FileNeed> needs = {
	    {present, "tls.cert_file", Need::read},
	    {dir + "/absent.pem", "tls.key_file", Need::read},
	    {dir + "/absent.log", "log.file", Need::write, true},
	    {dir, "data_dir", Need::write_entries},
	};
	auto problems = check_files(needs, std::nullopt);
	REQUIRE(problems.size() == 1);
	CHECK(problems[0].error == ENOENT);
	CHECK(describe_problem(problems[0], "tern") ==
	      dir + "/absent.pem: tls.key_file: user tern cannot read it: No such file or directory");
	std::filesystem::remove_all(dir);
}

TEST_CASE("privileges: a signing key that does not parse is an error naming its selector") {
	std::string dir = std::filesystem::temp_directory_path() / "tern-unit-dkimXXXXXX";
	REQUIRE(mkdtemp(dir.data()));
	std::ofstream(dir + "/bad.pem") << "not a key\n";
	auto cfg = Config::load_text(R"({"hostname": "mx.example.org", "domains": {"example.org": {"dkim": {
	  "selectors": {"s1": {"private_key_file": "bad.pem"}}, "sign": ["s1"]}}}})",
	                             dir + "/tern.json", dir);
	auto unloaded = cfg->unloaded_signing_keys();
	REQUIRE(unloaded.size() == 1);
	CHECK_FALSE(unloaded[0]->key.valid());
	CHECK(unloaded[0]->key_error.rfind(
		  dir + "/bad.pem: domains.example.org.dkim.selectors.s1.private_key_file: cannot load the key: ", 0) ==
	      0);
	std::filesystem::remove_all(dir);
}
