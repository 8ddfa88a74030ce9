// `ternd -n` (SPEC "ternd flags", "Details that scripts and tests rely on").
#include "bb.h"
#include "blackbox/ternctl_run.h"

namespace {

struct TempConfig {
	std::string dir = make_temp_dir("tern-cfg-");
	std::string path = dir + "/tern.json";
	explicit TempConfig(const std::string& text) { write_file(path, text); }
	~TempConfig() { remove_tree(dir); }
};

DaemonOptions not_started() {
	DaemonOptions options;
	options.start = false;
	return options;
}

}  // namespace

TEST_CASE("ternd -n: the example config etc/tern.json is valid") {
	std::string example = repo_root() + "/etc/tern.json";
	REQUIRE_MESSAGE(file_exists(example), "missing " << example);
	RunResult r = run_check_config(example);
	INFO(r.output);
	CHECK(r.exit_code == 0);
	CHECK(contains(r.output, "config ok"));
}

TEST_CASE("ternd -n: a generated test config is valid and summarised") {
	TernDaemon d(not_started());
	d.write_config();
	RunResult r = run_check_config(d.config_path());
	INFO(r.output);
	CHECK(r.exit_code == 0);
	CHECK(contains(r.output, "mx.test.example"));
	CHECK(contains(r.output, "test.example"));
	CHECK(contains(r.output, "alice"));
	CHECK(contains(r.output, std::to_string(d.smtp_port())));
	// "config ok" is the last line.
	std::string out = r.output;
	while (!out.empty() && out.back() == '\n') out.pop_back();
	CHECK(ends_with(out, "config ok"));
}

TEST_CASE("ternd -n: a wrong type names the key path, exit 1") {
	TempConfig cfg(R"({"hostname": "mx.test.example",
		"listeners": {"public": {"ips": ["127.0.0.1"], "smtp": {"port": "twenty-five"}}}})");
	RunResult r = run_check_config(cfg.path);
	INFO(r.output);
	CHECK(r.exit_code == 1);
	CHECK(contains(r.output, "error: "));
	CHECK(contains(r.output, "listeners.public.smtp.port"));
	CHECK_FALSE(contains(r.output, "config ok"));
}

TEST_CASE("ternd -n: an unknown key is an error naming it") {
	TempConfig cfg(R"({"hostname": "mx.test.example", "listeners": {}, "no_such_key": 1})");
	RunResult r = run_check_config(cfg.path);
	INFO(r.output);
	CHECK(r.exit_code == 1);
	CHECK(contains(r.output, "no_such_key"));
}

TEST_CASE("ternd -n: a missing hostname is an error naming it") {
	TempConfig cfg(R"({"listeners": {}})");
	RunResult r = run_check_config(cfg.path);
	INFO(r.output);
	CHECK(r.exit_code == 1);
	CHECK(contains(r.output, "hostname"));
}

TEST_CASE("ternd -n: an array element error uses [i]") {
	TempConfig cfg(R"({"hostname": "mx.test.example",
		"listeners": {"public": {"ips": ["127.0.0.1", 7], "smtp": {"port": 2525}}}})");
	RunResult r = run_check_config(cfg.path);
	INFO(r.output);
	CHECK(r.exit_code == 1);
	CHECK(contains(r.output, "listeners.public.ips[1]"));
}

TEST_CASE("ternd -n: comments are allowed") {
	TempConfig cfg(
	    "// leading comment\n{\n\t\"hostname\": \"mx.test.example\", /* inline */\n"
	    "\t\"listeners\": {}\n}\n");
	RunResult r = run_check_config(cfg.path);
	INFO(r.output);
	CHECK(r.exit_code == 0);
	CHECK(contains(r.output, "config ok"));
}

TEST_CASE("ternd -n: invalid JSON and a missing file exit 1") {
	TempConfig cfg("{\"hostname\": ");
	RunResult r = run_check_config(cfg.path);
	INFO(r.output);
	CHECK(r.exit_code == 1);
	RunResult missing = run_check_config(cfg.dir + "/does-not-exist.json");
	INFO(missing.output);
	CHECK(missing.exit_code == 1);
}

TEST_CASE("ternd -n and ternctl check: an unusable certificate or key is named as <file>: <key.path>: <what>") {
	TempConfig cfg(R"({"hostname": "mx.test.example", "listeners": {},
		"tls": {"cert_file": "cert.pem", "key_file": "key.pem"}})");
	write_file(cfg.dir + "/cert.pem", "not a certificate\n");
	write_file(cfg.dir + "/key.pem", "not a key\n");
	const std::string expected = "error: " + cfg.dir + "/cert.pem: tls.cert_file: not a PEM certificate chain: ";
	RunResult r = run_check_config(cfg.path);
	INFO(r.output);
	CHECK(r.exit_code == 1);
	CHECK(contains(r.output, expected));
	CHECK_FALSE(contains(r.output, "config ok"));
	ProgramResult ctl = run_ternctl({"-c", cfg.path, "check"});
	INFO(ctl.both());
	CHECK(ctl.exit_code == 1);
	CHECK(starts_with(ctl.err, expected));
}

// tern.json(5) tls: without a certificate port 465 cannot be served, and a
// submission port that requires STARTTLS lets nobody log in. The config is
// valid (the listeners start), so these are warnings.
TEST_CASE("ternd -n and ternctl check: listeners that need TLS without a certificate are warned about") {
	TempConfig cfg(R"({"hostname": "mx.test.example", "listeners": {"p": {"ips": ["127.0.0.1"],
		"submission": {"port": 10587}, "submissions": {"port": 10465}}}})");
	RunResult r = run_check_config(cfg.path);
	INFO(r.output);
	CHECK(r.exit_code == 0);
	CHECK(contains(r.output, "config ok"));
	CHECK(contains(r.output,
	               "warning: " + cfg.path +
	                   ": listeners.p.submissions: no tls.cert_file: every client of port 10465 is closed "
	                   "before the greeting"));
	CHECK(contains(r.output,
	               "warning: " + cfg.path +
	                   ": listeners.p.submission.require_starttls: no tls.cert_file, so no STARTTLS: no "
	                   "client of port 10587 can log in"));
	ProgramResult ctl = run_ternctl({"-c", cfg.path, "check"});
	CHECK(ctl.exit_code == 0);
	CHECK(contains(ctl.err, "listeners.p.submissions: no tls.cert_file"));

	TempConfig fine(R"({"hostname": "mx.test.example", "listeners": {"p": {"ips": ["127.0.0.1"],
		"submission": {"port": 10587, "require_starttls": false}}}})");
	RunResult quiet = run_check_config(fine.path);
	CHECK(quiet.exit_code == 0);
	CHECK_FALSE(contains(quiet.output, "warning:"));
}

TEST_CASE("ternctl check with an argument is a usage error that names check") {
	TempConfig cfg(R"({"hostname": "mx.test.example", "listeners": {}})");
	ProgramResult ctl = run_ternctl({"-c", cfg.path, "check", "extra"});
	INFO(ctl.both());
	CHECK(ctl.exit_code == 2);
	CHECK(starts_with(ctl.err, "ternctl: check: takes no arguments\n"));
	CHECK(ctl.out.empty());
}

TEST_CASE("ternd: an invalid config makes the daemon exit non-zero at start") {
	TernDaemon d(not_started());
	d.write_config_text(R"({"hostname": "mx.test.example", "listeners": {"test": {"smtp": {"port": -3}}}})");
	CHECK_FALSE(d.start());
}

TEST_CASE("ternd -V prints the version") {
	RunResult r = run_command({ternd_path(), "-V"});
	INFO(r.output);
	CHECK(r.exit_code == 0);
	CHECK(contains(r.output, "0."));
}

// An -l with no level is a usage error like an unknown one, not the
// config's level.
TEST_CASE("ternd -l with an empty or unknown level is a usage error, exit 2") {
	TempConfig cfg("{\"hostname\": \"mail.example.org\"}");
	for (const char* level : {"", "warn"}) {
		RunResult r = run_command({ternd_path(), "-l", level, "-n", "-c", cfg.path});
		INFO(level << ": " << r.output);
		CHECK(r.exit_code == 2);
		CHECK(contains(r.output, "ternd: unknown log level: " + std::string(level) + "\n"));
	}
	RunResult ok = run_command({ternd_path(), "-l", "debug", "-n", "-c", cfg.path});
	INFO(ok.output);
	CHECK(ok.exit_code == 0);
}
