// Config loading, validation errors with key paths, defaults, relative paths
// and recipient resolution (doc/behaviour.md "Config file").
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "config/config.h"

using tern::config::Config;
using tern::config::ConfigError;
using RcptKind = Config::RcptKind;

namespace {

// The documented example configuration (the shape of etc/tern.json), comments included.
const char* spec_example = R"({
  "hostname": "mail.example.org",            // required
  "data_dir": "/var/lib/tern",
  "user": "tern",                            // drop privileges after binding
  "pid_file": "/run/tern/ternd.pid",
  "log": {"level": "info", "file": null, "syslog": true},
  "dns": {"servers": ["127.0.0.1:53"], "timeout_ms": 5000},   // default: /etc/resolv.conf
  "tls": {"cert_file": "tls/cert.pem", "key_file": "tls/key.pem"},
  "delays_ms": {"bad_client": 1000, "auth_fail": 1000, "unknown_recipients": 5000},
  "timeouts_s": {"command": 300, "data_chunk": 180, "data_total": 1800, "tls_handshake": 60, "shutdown": 60},
  "limits": {"connection_rate_per_min": [300, 900, 2700],     // per /32, /26, /21 (IPv6 /64, /48, /32)
             "connections": [30, 90, 270],
             "auth_failures_per_min": [10, 30, 90], "auth_failures_per_day": [50, 150, 450]},
  "listeners": {
    "public": {
      "ips": ["0.0.0.0", "::"],
      "hostname": null,                      // overrides hostname for this listener
      "max_message_size": 104857600,
      "bare_newlines": "normalize",          // or "reject" (see doc/behaviour.md)
      "proxy_protocol": false,               // accept HAProxy PROXY v1/v2 header ...
      "trusted_proxies": [],                 // ... only from these CIDRs
      "smtp": {"enabled": true, "port": 25, "require_starttls": false,
               "dnsbl_zones": [], "first_time_sender_delay_ms": 15000},
      "submission": {"enabled": true, "port": 587, "require_starttls": true},
      "submissions": {"enabled": true, "port": 465}
    }
  },
  "domains": {
    "example.org": {
      "localpart_catchall_separator": "+",
      "localpart_case_sensitive": false,
      "dkim": {
        "selectors": {"s1": {"private_key_file": "dkim/s1.pem",
                             "canonicalization": "relaxed/relaxed",
                             "headers": ["From", "To", "Subject", "Date", "Message-Id"],
                             "expiration_s": 0}},
        "sign": ["s1"]
      }
    }
  },
  "accounts": {
    "alice": {
      "domain": "example.org",
      "maildir": null,                        // default data_dir/accounts/alice/Maildir
      "destinations": {"alice@example.org": {"mailbox": "INBOX"}},
      "rejects_mailbox": "Rejects",
      "keep_rejects": false,
      "max_outgoing_messages_per_day": 1000,
      "max_first_time_recipients_per_day": 200
    }
  },
  "postmaster": {"account": "alice", "mailbox": "INBOX"},
  "queue": {"smarthost": null, "smarthost_tls": "opportunistic",
            "retry_base_s": 450, "max_attempts": 8, "max_concurrent": 10},
  "metrics": {"listen": "127.0.0.1:8010"}
})";

std::shared_ptr<const Config> load(const std::string& text) {
	return Config::load_text(text, "tern.json", "/etc/tern");
}

// The ConfigError's what() for `text`, or "" when it loads.
std::string error_of(const std::string& text) {
	try {
		load(text);
	} catch (const ConfigError& e) {
		return e.what();
	}
	return "";
}

// A minimal config with `extra` spliced in after the hostname.
std::string with(const std::string& extra) {
	return R"({"hostname": "mail.example.org")" + (extra.empty() ? "" : ", " + extra) + "}";
}

const char* two_domains = R"(
	"domains": {
		"example.org": {"localpart_catchall_separator": "+"},
		"Example.NET": {"localpart_case_sensitive": true, "localpart_catchall_separator": "-"},
		"mail.example.org": {}
	},
	"accounts": {
		"alice": {"domain": "example.org", "destinations": {
			"Alice@example.org": {},
			"info@Example.org": {"mailbox": "Info"}}},
		"bob": {"destinations": {"Bob@example.net": {"mailbox": "INBOX"}, "@example.net": {"mailbox": "Catch"}}},
		"pm": {"destinations": {"postmaster@mail.example.org": {}}},
		"joerg": {"destinations": {"Jörg@example.org": {}}}
	},
	"postmaster": {"account": "pm", "mailbox": "Postmaster"}
)";

}  // namespace

TEST_CASE("config: the documented example loads with its values") {
	auto cfg = load(spec_example);
	CHECK(cfg->file == "tern.json");
	CHECK(cfg->hostname == "mail.example.org");
	CHECK(cfg->data_dir == "/var/lib/tern");
	CHECK(cfg->user == "tern");
	CHECK(cfg->pid_file == "/run/tern/ternd.pid");
	CHECK(cfg->log.level == tern::log::Level::info);
	CHECK(cfg->log.file == "");
	CHECK(cfg->log.syslog == true);
	CHECK(cfg->dns.servers == std::vector<std::string>{"127.0.0.1:53"});
	CHECK(cfg->dns.timeout_ms == 5000);
	CHECK(cfg->tls.cert_file == "/etc/tern/tls/cert.pem");
	CHECK(cfg->tls.key_file == "/etc/tern/tls/key.pem");
	CHECK(cfg->delays_ms.unknown_recipients == 5000);
	CHECK(cfg->timeouts_s.data_total == 1800);
	CHECK(cfg->limits.auth_failures_per_day == std::vector<int64_t>{50, 150, 450});

	REQUIRE(cfg->listeners.count("public") == 1);
	const auto& l = cfg->listeners.at("public");
	CHECK(l.name == "public");
	CHECK(l.ips == std::vector<std::string>{"0.0.0.0", "::"});
	CHECK(l.hostname == "mail.example.org");
	CHECK(l.max_message_size == 104857600);
	CHECK(l.bare_newlines == tern::smtp::BareNewlines::normalize);
	CHECK(l.proxy_protocol == false);
	CHECK(l.smtp.enabled);
	CHECK(l.smtp.port == 25);
	CHECK_FALSE(l.smtp.require_starttls);
	CHECK(l.smtp.first_time_sender_delay_ms == 15000);
	CHECK(l.submission.enabled);
	CHECK(l.submission.port == 587);
	CHECK(l.submission.require_starttls);
	CHECK(l.submissions.enabled);
	CHECK(l.submissions.port == 465);

	REQUIRE(cfg->domains.count("example.org") == 1);
	const auto& d = cfg->domains.at("example.org");
	CHECK(d.localpart_catchall_separator == "+");
	CHECK_FALSE(d.localpart_case_sensitive);
	REQUIRE(d.dkim_selectors.count("s1") == 1);
	const auto& s1 = d.dkim_selectors.at("s1");
	CHECK(s1.private_key_file == "/etc/tern/dkim/s1.pem");
	CHECK(s1.header_canon == "relaxed");
	CHECK(s1.body_canon == "relaxed");
	CHECK(s1.headers.size() == 5);
	CHECK(s1.expiration_s == 0);
	CHECK(d.dkim_sign == std::vector<std::string>{"s1"});

	REQUIRE(cfg->accounts.count("alice") == 1);
	const auto& a = cfg->accounts.at("alice");
	CHECK(a.domain == "example.org");
	CHECK(a.maildir == "/var/lib/tern/accounts/alice/Maildir");
	REQUIRE(a.destinations.count("alice@example.org") == 1);
	CHECK(a.destinations.at("alice@example.org").mailbox == "INBOX");
	CHECK(cfg->postmaster.account == "alice");
	CHECK(cfg->queue.smarthost == "");
	CHECK(cfg->queue.smarthost_tls == "opportunistic");
	CHECK(cfg->queue.max_attempts == 8);
	CHECK(cfg->metrics.listen == "127.0.0.1:8010");
	CHECK_FALSE(cfg->localserve);
}

TEST_CASE("config: defaults with only a hostname") {
	auto cfg = load(R"({"hostname": "Mail.Example.ORG"})");
	CHECK(cfg->hostname == "mail.example.org");
	CHECK(cfg->data_dir == "/var/lib/tern");
	CHECK(cfg->user == "");
	CHECK(cfg->pid_file == "");
	CHECK(cfg->log.level == tern::log::Level::info);
	CHECK(cfg->dns.servers.empty());
	CHECK(cfg->tls.cert_file == "");
	CHECK(cfg->delays_ms.bad_client == 1000);
	CHECK(cfg->timeouts_s.command == 300);
	CHECK(cfg->limits.connections == std::vector<int64_t>{30, 90, 270});
	CHECK(cfg->listeners.empty());
	CHECK(cfg->postmaster.account == "");
	CHECK(cfg->postmaster.mailbox == "INBOX");
	CHECK(cfg->queue.retry_base_s == 450);
	CHECK(cfg->metrics.listen == "");
}

TEST_CASE("config: listener sections default to disabled, present ones to their standard port") {
	auto cfg = load(with(R"("listeners": {"a": {"submission": {}}, "b": {"hostname": "mx.example.org",
		"smtp": {"port": 2525}, "submissions": {"enabled": false}}})"));
	const auto& a = cfg->listeners.at("a");
	CHECK(a.ips == std::vector<std::string>{"0.0.0.0", "::"});
	CHECK(a.hostname == "mail.example.org");
	CHECK_FALSE(a.smtp.enabled);
	CHECK(a.submission.enabled);
	CHECK(a.submission.port == 587);
	CHECK(a.submission.require_starttls);
	CHECK_FALSE(a.submissions.enabled);
	const auto& b = cfg->listeners.at("b");
	CHECK(b.hostname == "mx.example.org");
	CHECK(b.smtp.enabled);
	CHECK(b.smtp.port == 2525);
	CHECK_FALSE(b.smtp.require_starttls);
	CHECK_FALSE(b.submission.enabled);
	CHECK_FALSE(b.submissions.enabled);
	CHECK(b.submissions.port == 465);
}

TEST_CASE("config: comments of both kinds, also around and inside values") {
	auto cfg = load(R"(/* header
	   comment */ {
		// line comment
		"hostname": /* inline */ "mail.example.org", // trailing
		"user": "a // not a comment /* nor this */"
	})");
	CHECK(cfg->hostname == "mail.example.org");
	CHECK(cfg->user == "a // not a comment /* nor this */");
}

TEST_CASE("config: relative paths are relative to the config file's folder") {
	auto cfg = Config::load_text(with(R"("data_dir": "data/", "pid_file": "run/../ternd.pid",
		"log": {"file": "./log/tern.log"}, "tls": {"cert_file": "c.pem", "key_file": "/abs/k.pem"},
		"domains": {"example.org": {"dkim": {"selectors": {"s": {"private_key_file": "dkim/s.pem"}}}}},
		"accounts": {"a": {}, "b": {"maildir": "mail/b"}})"),
	                             "x.json", "/srv/tern");
	CHECK(cfg->data_dir == "/srv/tern/data");
	CHECK(cfg->pid_file == "/srv/tern/ternd.pid");
	CHECK(cfg->log.file == "/srv/tern/log/tern.log");
	CHECK(cfg->tls.cert_file == "/srv/tern/c.pem");
	CHECK(cfg->tls.key_file == "/abs/k.pem");
	CHECK(cfg->domains.at("example.org").dkim_selectors.at("s").private_key_file == "/srv/tern/dkim/s.pem");
	CHECK(cfg->accounts.at("a").maildir == "/srv/tern/data/accounts/a/Maildir");
	CHECK(cfg->accounts.at("b").maildir == "/srv/tern/mail/b");
	// Exactly one... no: two accounts, so no implicit postmaster.
	CHECK(cfg->postmaster.account == "");
}

TEST_CASE("config: load_file reads the file and resolves paths against its folder") {
	auto dir = std::filesystem::temp_directory_path() / ("tern-config-test-" + std::to_string(getpid()));
	std::filesystem::create_directories(dir);
	auto file = dir / "tern.json";
	{
		std::ofstream out(file);
		out << with(R"("data_dir": "data", "accounts": {"solo": {}})");
	}
	auto cfg = Config::load_file(file.string());
	CHECK(cfg->file == file.string());
	CHECK(cfg->data_dir == (dir / "data").string());
	// A single account is the postmaster when none is named.
	CHECK(cfg->postmaster.account == "solo");
	std::filesystem::remove_all(dir);

	try {
		Config::load_file((dir / "missing.json").string());
		FAIL("no error for a missing file");
	} catch (const ConfigError& e) {
		CHECK(std::string(e.what()) ==
		      (dir / "missing.json").string() + ": cannot open: No such file or directory");
	}
}

// A directory named as the config opens but reads as nothing: it is named
// for what it is, not as a syntax error at line 1.
TEST_CASE("config: load_file of a directory says so") {
	auto dir = std::filesystem::temp_directory_path() / ("tern-config-dir-" + std::to_string(getpid()));
	std::filesystem::create_directories(dir);
	std::string error;
	try {
		Config::load_file(dir.string());
	} catch (const ConfigError& e) {
		error = e.what();
	}
	std::filesystem::remove_all(dir);
	CHECK(error == dir.string() + ": cannot open: Is a directory");
}

// A config is a few kilobytes; an endless file must not take the memory.
TEST_CASE("config: load_file refuses a file over 16 MiB") {
	std::string error;
	try {
		Config::load_file("/dev/zero");
	} catch (const ConfigError& e) {
		error = e.what();
	}
	CHECK(error == "/dev/zero: larger than 16 MiB");
}

// A NUL would end the text wherever the system reads it (a path, a host
// name), and the JSON parser takes a NUL byte for the end of its input:
// -n refuses both rather than pass a config ternd cannot run as written.
TEST_CASE("config: NUL characters are refused, escaped or raw") {
	CHECK(error_of(with(R"("data_dir": "data\u0000evil")")) ==
	      "tern.json: data_dir: must not contain a NUL character (\\u0000)");
	CHECK(error_of(R"({"hostname": "a.example\u0000evil"})") ==
	      "tern.json: hostname: must not contain a NUL character (\\u0000)");
	CHECK(error_of(with(R"("accounts": {"al\u0000ice": {}})")) ==
	      "tern.json: accounts.al\\u0000ice: a key must not contain a NUL character");
	std::string raw = "{\"hostname\": \"a.example\"}\n";
	raw += '\0';
	raw += " garbage {{{";
	CHECK(error_of(raw) == "tern.json: parse error at line 2, column 1: a NUL byte");
}

// ternd would fail at start with the port in use; -n says which keys collide.
TEST_CASE("config: the metrics page may not share a listener's port") {
	CHECK(error_of(with(R"("listeners": {"p": {"ips": ["127.0.0.1"], "smtp": {"port": 2525}}},
	                       "metrics": {"listen": "127.0.0.1:2525"})")) ==
	      "tern.json: metrics.listen: port 2525 on 127.0.0.1 is also used by listeners.p.smtp.port");
	CHECK(error_of(with(R"("listeners": {"p": {"ips": ["127.0.0.1"], "smtp": {"port": 2525}}},
	                       "metrics": {"listen": "127.0.0.1:2526"})")) == "");
	// A listener on the wildcard addresses (the default ips) holds the port
	// on every address of the family.
	CHECK(error_of(with(R"("listeners": {"p": {"submission": {}}}, "metrics": {"listen": "127.0.0.1:587"})")) ==
	      "tern.json: metrics.listen: port 587 on 127.0.0.1 is also used by listeners.p.submission.port");
	CHECK(error_of(with(R"("listeners": {"p": {"submission": {}}}, "metrics": {"listen": "[::1]:587"})")) ==
	      "tern.json: metrics.listen: port 587 on ::1 is also used by listeners.p.submission.port");
	CHECK(error_of(with(R"("listeners": {"a": {"ips": ["0.0.0.0"], "smtp": {}},
	                                     "b": {"ips": ["192.0.2.1"], "smtp": {}}})")) ==
	      "tern.json: listeners.b.smtp.port: port 25 on 192.0.2.1 is also used by listeners.a.smtp.port");
	// The families are apart: 0.0.0.0 and :: both take port 25.
	CHECK(error_of(with(
		  R"("listeners": {"a": {"ips": ["0.0.0.0"], "smtp": {}}, "b": {"ips": ["::"], "smtp": {}}})")) == "");
}

TEST_CASE("config: type errors name the key path") {
	CHECK(error_of(with(R"("listeners": {"public": {"smtp": {"port": "25"}}})")) ==
	      "tern.json: listeners.public.smtp.port: expected an integer");
	CHECK(error_of(with(R"("listeners": {"public": {"smtp": {"port": 25.0}}})")) ==
	      "tern.json: listeners.public.smtp.port: expected an integer");
	CHECK(error_of(with(R"("user": 7)")) == "tern.json: user: expected a string");
	CHECK(error_of(with(R"("log": {"syslog": "yes"})")) == "tern.json: log.syslog: expected a boolean");
	CHECK(error_of(with(R"("log": [])")) == "tern.json: log: expected an object");
	CHECK(error_of(with(R"("dns": {"servers": "1.1.1.1"})")) == "tern.json: dns.servers: expected an array");
	CHECK(error_of(with(R"("listeners": {"public": {"ips": ["::1", 5]}})")) ==
	      "tern.json: listeners.public.ips[1]: expected a string");
	CHECK(error_of(with(R"("log": {"file": 3})")) == "tern.json: log.file: expected a string or null");
	CHECK(error_of(with(R"("user": null)")) == "tern.json: user: expected a string");
}

TEST_CASE("config: unknown keys, missing and duplicate keys") {
	CHECK(error_of(with(R"("listeners": {"public": {"bogus": 1}})")) ==
	      "tern.json: listeners.public.bogus: unknown key");
	CHECK(error_of(with(R"("hostnmae": "x")")) == "tern.json: hostnmae: unknown key");
	// dnsbl_zones belongs to smtp only.
	CHECK(error_of(with(R"("listeners": {"p": {"submission": {"dnsbl_zones": []}}})")) ==
	      "tern.json: listeners.p.submission.dnsbl_zones: unknown key");
	CHECK(error_of(R"({"data_dir": "/x"})") == "tern.json: hostname: required");
	CHECK(error_of(with(R"("domains": {"example.org": {"dkim": {"selectors": {"s": {}}}}})")) ==
	      "tern.json: domains.example.org.dkim.selectors.s.private_key_file: required");
	CHECK(error_of(with(R"("listeners": {"p": {"smtp": {"port": 25, "port": 26}}})")) ==
	      "tern.json: listeners.p.smtp.port: duplicate key");
	CHECK(error_of(with(R"("dns": {"servers": []}, "limits": {"connections": [1, 2, {"a": 1, "a": 2}]})")) ==
	      "tern.json: limits.connections[2].a: duplicate key");
}

TEST_CASE("config: syntax errors give line and column") {
	CHECK(error_of("{\n  \"hostname\": \"a.example\",\n  oops\n}") ==
	      "tern.json: parse error at line 3, column 3: syntax error while parsing object key - invalid literal; "
	      "expected string literal");
	CHECK(error_of("{\"hostname\": \"a.example\" /* open") ==
	      "tern.json: parse error at line 1, column 33: syntax error while parsing object - invalid comment; "
	      "missing closing '*/'; expected '}'");
	CHECK(error_of("{\"hostname\": \"a.example\",}") ==
	      "tern.json: parse error at line 1, column 26: syntax error while parsing object key - unexpected '}'; "
	      "expected string literal");
	CHECK(error_of("[1]") == "tern.json: expected a JSON object at the top level");
	std::string empty = error_of("");
	CHECK(empty.rfind("tern.json: parse error at line 1, column 1:", 0) == 0);
}

TEST_CASE("config: value errors") {
	CHECK(error_of(with(R"("listeners": {"p": {"smtp": {"port": 0}}})")) ==
	      "tern.json: listeners.p.smtp.port: port must be between 1 and 65535");
	CHECK(error_of(with(R"("listeners": {"p": {"submissions": {"port": 65536}}})")) ==
	      "tern.json: listeners.p.submissions.port: port must be between 1 and 65535");
	CHECK(error_of(with(R"("listeners": {"public": {"ips": ["127.0.0.1", "localhost"]}})")) ==
	      "tern.json: listeners.public.ips[1]: not an IP address: \"localhost\"");
	CHECK(error_of(with(R"("listeners": {"p": {"ips": []}})")) ==
	      "tern.json: listeners.p.ips: expected at least one IP address");
	CHECK(error_of(with(R"("listeners": {"p": {"bare_newlines": "strip"}})")) ==
	      "tern.json: listeners.p.bare_newlines: expected \"normalize\" or \"reject\", got \"strip\"");
	CHECK(error_of(with(R"("listeners": {"p": {"proxy_protocol": true, "trusted_proxies": ["10.0.0.0/33"]}})")) ==
	      "tern.json: listeners.p.trusted_proxies[0]: not an IP network (CIDR): \"10.0.0.0/33\"");
	CHECK(error_of(with(R"("listeners": {"p": {"proxy_protocol": true}})")) ==
	      "tern.json: listeners.p.trusted_proxies: required when proxy_protocol is true");
	CHECK(error_of(with(R"("listeners": {"p": {"smtp": {}, "submission": {"port": 25}}})")) ==
	      "tern.json: listeners.p.submission.port: port 25 on 0.0.0.0 is also used by listeners.p.smtp.port");
	CHECK(error_of(with(R"("log": {"level": "verbose"})")) ==
	      "tern.json: log.level: unknown log level \"verbose\" (expected error, info, debug, trace, traceauth or "
	      "tracedata)");
	CHECK(error_of(with(R"("queue": {"smarthost_tls": "always"})")) ==
	      "tern.json: queue.smarthost_tls: expected \"none\", \"opportunistic\", \"required\" or \"implicit\", got "
	      "\"always\"");
	// A mailbox delivery could not use is refused with the configuration.
	for (const char* name : {".", "..", "a/b", ""})
		CHECK(error_of(with(R"("domains": {"example.org": {}}, "accounts": {"alice": {"domain": "example.org",
		      "rejects_mailbox": ")" +
		                    std::string(name) + R"("}})")) ==
		      "tern.json: accounts.alice.rejects_mailbox: not a valid mailbox name: \"" + std::string(name) +
		          "\"");
	CHECK(error_of(with(R"("domains": {"example.org": {}}, "accounts": {"alice": {"domain": "example.org",
	      "rejects_mailbox": "\u00c9t\u00e9 & R&D"}})")) == "");
	CHECK(error_of(R"({"hostname": "mail_example.org"})") ==
	      "tern.json: hostname: not a valid domain name: \"mail_example.org\"");
	CHECK(error_of(R"({"hostname": "-a.example"})") ==
	      "tern.json: hostname: not a valid domain name: \"-a.example\"");
	CHECK(error_of(with(R"("limits": {"connections": [1, 2]})")) ==
	      "tern.json: limits.connections: expected an array of 3 positive integers");
	CHECK(error_of(with(R"("limits": {"connections": [1, 0, 3]})")) ==
	      "tern.json: limits.connections[1]: must be positive");
	CHECK(error_of(with(R"("delays_ms": {"auth_fail": -1})")) ==
	      "tern.json: delays_ms.auth_fail: must not be negative");
	CHECK(error_of(with(R"("timeouts_s": {"command": 0})")) == "tern.json: timeouts_s.command: must be positive");
	CHECK(error_of(with(R"("dns": {"servers": ["1.2.3.4", "::1", "[::1]:5353", "ns.example"]})")) ==
	      "tern.json: dns.servers[3]: expected \"IP\", \"IP:port\" or \"[IPv6]:port\", got \"ns.example\"");
	CHECK(error_of(with(R"("metrics": {"listen": "8010"})")) ==
	      "tern.json: metrics.listen: expected \"IP:port\" or \"[IPv6]:port\", got \"8010\"");
	CHECK(error_of(with(R"("tls": {"cert_file": "c.pem"})")) ==
	      "tern.json: tls.key_file: required when cert_file is set");
}

TEST_CASE("config: domain, account, DKIM and postmaster cross-checks") {
	CHECK(error_of(with(R"("accounts": {"a": {"domain": "example.org"}})")) ==
	      "tern.json: accounts.a.domain: domain \"example.org\" is not configured under domains");
	CHECK(
	    error_of(with(R"("domains": {"example.org": {}},
		"accounts": {"a": {"destinations": {"a@example.com": {}}}})")) ==
	    "tern.json: accounts.a.destinations.a@example.com: domain \"example.com\" is not configured under domains");
	CHECK(
	    error_of(with(R"("domains": {"example.org": {"localpart_catchall_separator": "+"}},
		"accounts": {"a": {"destinations": {"a+b@example.org": {}}}})")) ==
	    "tern.json: accounts.a.destinations.a+b@example.org: localpart contains the catch-all separator \"+\", so "
	    "it never matches");
	CHECK(error_of(with(R"("domains": {"example.org": {}},
		"accounts": {"a": {"destinations": {"x@example.org": {}}}, "b": {"destinations": {"X@Example.org": {}}}})")) ==
	      "tern.json: accounts.b.destinations.X@Example.org: address \"x@example.org\" is already a destination of "
	      "account \"a\"");
	CHECK(error_of(with(R"("accounts": {"a": {}}, "postmaster": {"account": "b"})")) ==
	      "tern.json: postmaster.account: no such account \"b\"");
	CHECK(error_of(with(R"("domains": {"example.org": {"dkim": {"selectors": {"s1": {"private_key_file": "k"}},
		"sign": ["s1", "s2"]}}})")) == "tern.json: domains.example.org.dkim.sign[1]: no such selector \"s2\"");
	CHECK(error_of(with(R"("domains": {"example.org": {"dkim": {"selectors": {"s1": {"private_key_file": "k",
		"canonicalization": "relaxed"}}}}})")) ==
	      "tern.json: domains.example.org.dkim.selectors.s1.canonicalization: expected \"header/body\", each "
	      "\"simple\" or \"relaxed\", got \"relaxed\"");
	CHECK(error_of(with(R"("domains": {"example.org": {"dkim": {"selectors": {"s1": {"private_key_file": "k",
		"headers": ["To"]}}}}})")) ==
	      "tern.json: domains.example.org.dkim.selectors.s1.headers: must include From (RFC 6376 5.4)");
	CHECK(error_of(with(R"("domains": {"exa mple.org": {}})")) ==
	      "tern.json: domains.exa mple.org: not a valid domain name: \"exa mple.org\"");
	CHECK(error_of(with(R"("accounts": {"../x": {}})")) ==
	      "tern.json: accounts.../x: account name must not be empty, \".\", \"..\" or contain \"/\"");
	CHECK(
	    error_of(with(R"("queue": {"smarthost": "relay.example:0"})")) ==
	    "tern.json: queue.smarthost: expected \"host\", \"host:port\" or \"[IPv6]:port\", got \"relay.example:0\"");
}

TEST_CASE("config: etc/tern.json (the installed example) is valid") {
	// Unit tests run from the top of the tree (make unit / make check).
	auto cfg = Config::load_file("etc/tern.json");
	CHECK(cfg->hostname == "mail.example.org");
	CHECK(cfg->listeners.at("public").submission.require_starttls);
	CHECK(cfg->domains.at("example.org").dkim_sign == std::vector<std::string>{"s1"});
	CHECK(cfg->accounts.at("alice").destinations.count("alice@example.org") == 1);
	CHECK(cfg->tls.cert_file == std::filesystem::absolute("etc/tls/cert.pem").lexically_normal().string());
	std::string summary = cfg->summary();
	CHECK(summary.substr(summary.size() - 10) == "config ok\n");
}

TEST_CASE("config: internationalized domain names become A-labels") {
	auto cfg = load(R"({"hostname": "mail.bücher.example", "domains": {"Bücher.example": {}},
		"accounts": {"a": {"destinations": {"Anna@bücher.example": {}}}}})");
	CHECK(cfg->hostname == "mail.xn--bcher-kva.example");
	CHECK(cfg->domains.count("xn--bcher-kva.example") == 1);
	CHECK(cfg->accounts.at("a").destinations.count("anna@xn--bcher-kva.example") == 1);
}

TEST_CASE("config: a bare localpart destination is in the account's domain") {
	auto cfg = load(with(R"("domains": {"example.org": {}}, "accounts": {"a": {"domain": "example.org",
		"destinations": {"Carol": {}}}})"));
	CHECK(cfg->accounts.at("a").destinations.count("carol@example.org") == 1);
	CHECK(error_of(with(R"("domains": {"example.org": {}}, "accounts": {"a": {"destinations": {"carol": {}}}})")) ==
	      "tern.json: accounts.a.destinations.carol: expected an address \"localpart@domain\" or \"@domain\"");
}

TEST_CASE("config: canonicalization and smarthost parsing") {
	auto cfg = load(with(R"("domains": {"example.org": {"dkim": {"selectors": {"s1": {"private_key_file": "k",
		"canonicalization": "Simple/relaxed"}}}}}, "queue": {"smarthost": "[2001:db8::1]:587"})"));
	const auto& s1 = cfg->domains.at("example.org").dkim_selectors.at("s1");
	CHECK(s1.header_canon == "simple");
	CHECK(s1.body_canon == "relaxed");
	CHECK(cfg->queue.smarthost_host == "2001:db8::1");
	CHECK(cfg->queue.smarthost_port == 587);
	cfg = load(with(R"("queue": {"smarthost": "Relay.Example.NET"})"));
	CHECK(cfg->queue.smarthost_host == "relay.example.net");
	CHECK(cfg->queue.smarthost_port == 25);
}

TEST_CASE("config: destinations are stored canonical") {
	auto cfg = load(with(two_domains));
	CHECK(cfg->domains.count("example.net") == 1);
	const auto& alice = cfg->accounts.at("alice");
	CHECK(alice.destinations.count("alice@example.org") == 1);
	CHECK(alice.destinations.at("info@example.org").mailbox == "Info");
	const auto& bob = cfg->accounts.at("bob");
	CHECK(bob.destinations.count("Bob@example.net") == 1);  // case-sensitive domain
	CHECK(bob.destinations.count("@example.net") == 1);
	CHECK(cfg->account_of_address.at("@example.net") == "bob");
}

TEST_CASE("config: resolve_recipient") {
	auto cfg = load(with(two_domains));
	auto r = cfg->resolve_recipient("alice", "example.org");
	CHECK(r.kind == RcptKind::local);
	REQUIRE(r.account != nullptr);
	CHECK(r.account->name == "alice");
	CHECK(r.mailbox == "INBOX");
	CHECK(r.canonical == "alice@example.org");

	SUBCASE("catch-all separator and case-insensitivity") {
		r = cfg->resolve_recipient("ALICE+news+more", "Example.ORG");
		CHECK(r.kind == RcptKind::local);
		CHECK(r.account->name == "alice");
		CHECK(r.canonical == "alice@example.org");
		r = cfg->resolve_recipient("Info", "example.org");
		CHECK(r.mailbox == "Info");
		// "-" is example.net's separator, not example.org's.
		CHECK(cfg->resolve_recipient("alice-x", "example.org").kind == RcptKind::unknown_user);
	}
	SUBCASE("a UTF-8 localpart in any case, as the model folds it") {
		for (const char* localpart : {"jörg", "JÖRG", "Jörg+tag"}) {
			CAPTURE(localpart);
			r = cfg->resolve_recipient(localpart, "example.org");
			CHECK(r.kind == RcptKind::local);
			REQUIRE(r.account != nullptr);
			CHECK(r.account->name == "joerg");
			CHECK(r.canonical == "jörg@example.org");
		}
	}
	SUBCASE("case-sensitive domain with a catch-all destination") {
		r = cfg->resolve_recipient("Bob-tag", "example.net");
		CHECK(r.kind == RcptKind::local);
		CHECK(r.account->name == "bob");
		CHECK(r.mailbox == "INBOX");
		CHECK(r.canonical == "Bob@example.net");
		r = cfg->resolve_recipient("bob", "example.net");  // other case: only the catch-all matches
		CHECK(r.kind == RcptKind::local);
		CHECK(r.mailbox == "Catch");
		CHECK(r.canonical == "@example.net");
		CHECK(cfg->resolve_recipient("anyone", "example.net").canonical == "@example.net");
	}
	SUBCASE("postmaster forms") {
		for (auto [localpart, domain] :
		     {std::pair{"postmaster", ""}, std::pair{"PostMaster", ""},
		      std::pair{"postmaster", "mail.example.org"}, std::pair{"POSTMASTER", "MAIL.example.org"}}) {
			CAPTURE(localpart);
			CAPTURE(domain);
			r = cfg->resolve_recipient(localpart, domain);
			CHECK(r.kind == RcptKind::local);
			REQUIRE(r.account != nullptr);
			CHECK(r.account->name == "pm");
			CHECK(r.mailbox == "Postmaster");
			CHECK(r.canonical == "postmaster@mail.example.org");
		}
		// RFC 5321 4.5.1: postmaster at every hosted domain.
		r = cfg->resolve_recipient("Postmaster", "example.org");
		CHECK(r.kind == RcptKind::local);
		CHECK(r.account->name == "pm");
		CHECK(r.mailbox == "Postmaster");
		CHECK(r.canonical == "postmaster@example.org");
		// A catch-all destination comes first.
		r = cfg->resolve_recipient("postmaster", "example.net");
		CHECK(r.account->name == "bob");
		CHECK(r.mailbox == "Catch");
		// Not postmaster of a foreign domain.
		CHECK(cfg->resolve_recipient("postmaster", "example.com").kind == RcptKind::foreign_domain);
		// A listener's own hostname counts as ours.
		auto mx = load(
		    with(std::string(two_domains) + R"(, "listeners": {"p": {"hostname": "mx.example.com"}})"));
		r = mx->resolve_recipient("postmaster", "mx.example.com");
		CHECK(r.kind == RcptKind::local);
		CHECK(r.account->name == "pm");
		CHECK(r.canonical == "postmaster@mx.example.com");
		CHECK(mx->resolve_recipient("alice", "mx.example.com").kind == RcptKind::foreign_domain);
	}
	SUBCASE("unknown user and foreign domain") {
		r = cfg->resolve_recipient("carol", "example.org");
		CHECK(r.kind == RcptKind::unknown_user);
		CHECK(r.account == nullptr);
		r = cfg->resolve_recipient("alice", "example.com");
		CHECK(r.kind == RcptKind::foreign_domain);
		CHECK(r.account == nullptr);
		CHECK(cfg->resolve_recipient("alice", "sub.example.org").kind == RcptKind::foreign_domain);
	}
	SUBCASE("no postmaster account configured") {
		auto bare = load(with(R"("domains": {"example.org": {}}, "accounts": {"a": {}, "b": {}})"));
		CHECK(bare->resolve_recipient("postmaster", "").kind == RcptKind::unknown_user);
		CHECK(bare->resolve_recipient("postmaster", "example.org").kind == RcptKind::unknown_user);
	}
}

TEST_CASE("config: account_for_address and hosts_domain") {
	auto cfg = load(with(two_domains));
	const auto* a = cfg->account_for_address("Alice+x", "EXAMPLE.org");
	REQUIRE(a != nullptr);
	CHECK(a->name == "alice");
	CHECK(cfg->account_for_address("whoever", "example.net")->name == "bob");
	// postmaster is no sending identity unless a destination names it.
	CHECK(cfg->account_for_address("postmaster", "example.org") == nullptr);
	CHECK(cfg->account_for_address("postmaster", "mail.example.org")->name == "pm");
	CHECK(cfg->account_for_address("alice", "example.com") == nullptr);
	CHECK(cfg->hosts_domain("Example.Net"));
	CHECK_FALSE(cfg->hosts_domain("example.com"));
}

TEST_CASE("config: summary") {
	auto cfg = load(spec_example);
	CHECK(cfg->summary() ==
	      "hostname: mail.example.org\n"
	      "listener public: smtp 0.0.0.0:25 [::]:25, submission 0.0.0.0:587 [::]:587 (STARTTLS required), "
	      "submissions 0.0.0.0:465 [::]:465\n"
	      "domains: example.org\n"
	      "accounts: alice\n"
	      "config ok\n");
	cfg = load(with(R"("listeners": {"off": {"ips": ["127.0.0.1"], "hostname": "mx.example.org"}})"));
	CHECK(cfg->summary() ==
	      "hostname: mail.example.org\n"
	      "listener off: no service enabled (hostname mx.example.org)\n"
	      "domains: (none)\n"
	      "accounts: (none)\n"
	      "config ok\n");
}

TEST_CASE("config: localserve") {
	auto cfg = Config::localserve_config("/tmp/tern-ls/");
	CHECK(cfg->localserve);
	CHECK(cfg->file == "");
	CHECK(cfg->hostname == "localhost");
	CHECK(cfg->data_dir == "/tmp/tern-ls");
	CHECK(cfg->delays_ms.bad_client == 0);
	CHECK(cfg->delays_ms.auth_fail == 0);
	CHECK(cfg->delays_ms.unknown_recipients == 0);
	CHECK(cfg->metrics.listen == "127.0.0.1:1080");
	CHECK(cfg->tls.cert_file == "/tmp/tern-ls/tls/cert.pem");
	const auto& l = cfg->listeners.at("localserve");
	CHECK(l.ips == std::vector<std::string>{"127.0.0.1", "::1"});
	CHECK(l.smtp.enabled);
	CHECK(l.smtp.port == 1025);
	CHECK_FALSE(l.smtp.require_starttls);
	CHECK(l.smtp.first_time_sender_delay_ms == 0);
	CHECK(l.submission.port == 1587);
	CHECK_FALSE(l.submission.require_starttls);
	CHECK(l.submissions.port == 1465);
	const auto& a = cfg->accounts.at("tern");
	CHECK(a.domain == "localhost");
	CHECK(a.maildir == "/tmp/tern-ls/accounts/tern/Maildir");
	CHECK(a.destinations.count("tern@localhost") == 1);
	CHECK(cfg->postmaster.account == "tern");
	CHECK(cfg->domains.at("localhost").localpart_catchall_separator == "+");
	// Every recipient lands in the one account.
	auto r = cfg->resolve_recipient("rcpttopermerror", "example.com");
	CHECK(r.kind == RcptKind::local);
	CHECK(r.account->name == "tern");
	CHECK(r.mailbox == "INBOX");
	CHECK(cfg->account_for_address("anyone", "example.com")->name == "tern");
	CHECK(cfg->summary() ==
	      "hostname: localhost\n"
	      "listener localserve: smtp 127.0.0.1:1025 [::1]:1025, submission 127.0.0.1:1587 [::1]:1587, "
	      "submissions 127.0.0.1:1465 [::1]:1465\n"
	      "domains: localhost\n"
	      "accounts: tern\n"
	      "config ok\n");
}

TEST_CASE("config: ConfigError fields") {
	ConfigError e("f.json", "a.b[2]", "bad");
	CHECK(std::string(e.what()) == "f.json: a.b[2]: bad");
	CHECK(e.file == "f.json");
	CHECK(e.path == "a.b[2]");
	CHECK(e.message == "bad");
	CHECK(std::string(ConfigError("f.json", "", "bad").what()) == "f.json: bad");
}

TEST_CASE("config: a number too large for JSON is a ConfigError (fuzzing regression)") {
	try {
		tern::config::Config::load_text(R"({"hostname": "mx.example.org", "timeouts_s": {"command": 1e400}})",
		                                "t.json", "/tmp");
		FAIL("no error");
	} catch (const tern::config::ConfigError& e) {
		CHECK(std::string(e.what()).starts_with("t.json: "));
	}
}

TEST_CASE("config: smarthost_auth reads the password file, relative to the config's folder, owner-only") {
	auto dir = std::filesystem::temp_directory_path() / ("tern-config-auth-" + std::to_string(getpid()));
	std::filesystem::create_directories(dir / "secrets");
	auto pw = dir / "secrets" / "relay.pw";
	{
		std::ofstream out(pw);
		out << "s3cret with space\r\nsecond line ignored\n";
	}
	std::filesystem::permissions(pw, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
	                             std::filesystem::perm_options::replace);
	{
		std::ofstream out(dir / "ca.pem");
		out << "not parsed by the loader\n";
	}
	const std::string auth = R"("queue": {"smarthost": "relay.example:465", "smarthost_tls": "implicit",
		"smarthost_ca_file": "ca.pem",
		"smarthost_auth": {"username": "me@example.org", "password_file": "secrets/relay.pw"}})";
	auto cfg = Config::load_text(with(auth), "x.json", dir.string());
	CHECK(cfg->queue.smarthost_tls == "implicit");
	CHECK(cfg->queue.smarthost_ca_file == (dir / "ca.pem").string());
	CHECK(cfg->queue.smarthost_username == "me@example.org");
	CHECK(cfg->queue.smarthost_password_file == (dir / "secrets" / "relay.pw").string());
	CHECK(cfg->queue.smarthost_password == "s3cret with space");

	auto error_in = [&](const std::string& text) -> std::string {
		try {
			Config::load_text(with(text), "x.json", dir.string());
		} catch (const ConfigError& e) {
			return e.what();
		}
		return "";
	};
	// Group- or world-readable: refused, like ssh refuses such a key.
	std::filesystem::permissions(pw, std::filesystem::perms::group_read, std::filesystem::perm_options::add);
	CHECK(error_in(auth) ==
	      "x.json: queue.smarthost_auth.password_file: " + pw.string() +
	          ": readable by group or others (mode 0640); make it readable by its owner only "
	          "(chmod 600)");
	std::filesystem::permissions(pw, std::filesystem::perms::group_read | std::filesystem::perms::others_read,
	                             std::filesystem::perm_options::remove);
	std::filesystem::permissions(pw, std::filesystem::perms::others_read, std::filesystem::perm_options::add);
	CHECK(error_in(auth).find("readable by group or others (mode 0604)") != std::string::npos);
	std::filesystem::permissions(pw, std::filesystem::perms::others_read, std::filesystem::perm_options::remove);
	CHECK(error_in(auth) == "");
	// The secret never appears in an error text.
	{
		std::ofstream out(pw);
		out << "\n";
	}
	CHECK(error_in(auth) ==
	      "x.json: queue.smarthost_auth.password_file: " + pw.string() +
	          ": the first line (the password) is empty");
	std::filesystem::remove(pw);
	CHECK(error_in(auth) ==
	      "x.json: queue.smarthost_auth.password_file: " + pw.string() + ": No such file or directory");
	CHECK(error_in(R"("queue": {"smarthost_auth": {"password_file": "secrets/relay.pw"}})") ==
	      "x.json: queue.smarthost_auth.username: required");
	CHECK(error_in(R"("queue": {"smarthost_auth": {"username": "u"}})") ==
	      "x.json: queue.smarthost_auth.password_file: required");
	CHECK(error_in(R"("queue": {"smarthost_auth": {"username": "u", "password_file": "p", "pass": "x"}})") ==
	      "x.json: queue.smarthost_auth.pass: unknown key");
	CHECK(error_in(R"("queue": {"smarthost_auth": null})") == "");
	// Verified TLS needs a readable CA file; unverified modes do not look.
	CHECK(error_in(R"("queue": {"smarthost": "relay.example", "smarthost_tls": "required",
		"smarthost_ca_file": "missing.pem"})") ==
	      "x.json: queue.smarthost_ca_file: " + (dir / "missing.pem").string() + ": No such file or directory");
	CHECK(error_in(R"("queue": {"smarthost": "relay.example", "smarthost_tls": "opportunistic",
		"smarthost_ca_file": "missing.pem"})") == "");
	std::filesystem::remove_all(dir);
}

TEST_CASE("config: smarthost defaults: no AUTH, system trust store") {
	auto cfg = load(with(""));
	CHECK(cfg->queue.smarthost_username == "");
	CHECK(cfg->queue.smarthost_password == "");
	CHECK(cfg->queue.smarthost_ca_file == "/etc/ssl/certs/ca-certificates.crt");
	CHECK(load(with(R"("queue": {"smarthost_tls": "implicit"})"))->queue.smarthost_tls == "implicit");
}

TEST_CASE("config: the auth backend, tern's own by default or Dovecot's socket") {
	auto plain = load(with(""));
	CHECK(plain->auth.backend == Config::AuthBackend::tern);
	auto dovecot = load(
	    with(R"("auth": {"backend": "dovecot", "dovecot_socket": "run/auth", "dovecot_timeout_ms": 500})"));
	CHECK(dovecot->auth.backend == Config::AuthBackend::dovecot);
	CHECK(dovecot->auth.dovecot_socket == "/etc/tern/run/auth");
	CHECK(dovecot->auth.dovecot_timeout_ms == 500);
	CHECK(load(with(R"("auth": {"backend": "tern"})"))->auth.backend == Config::AuthBackend::tern);
	CHECK(error_of(with(R"("auth": {"backend": "dovecot"})")) ==
	      "tern.json: auth.dovecot_socket: required with backend \"dovecot\"");
	CHECK(error_of(with(R"("auth": {"backend": "ldap"})")) ==
	      "tern.json: auth.backend: expected \"tern\" or \"dovecot\", got \"ldap\"");
	CHECK(error_of(with(R"("auth": {"backend": "dovecot", "dovecot_socket": ""})")) ==
	      "tern.json: auth.dovecot_socket: must not be empty");
	CHECK(error_of(with(R"("auth": {"backend": "dovecot", "dovecot_socket": "/s", "dovecot_timeout_ms": 0})")) ==
	      "tern.json: auth.dovecot_timeout_ms: must be positive");
	CHECK(error_of(with(R"("auth": {"socket": "/s"})")) == "tern.json: auth.socket: unknown key");
	CHECK(error_of(with(R"("auth": ["dovecot"])")) == "tern.json: auth: expected an object");
}

TEST_CASE("config: LMTP delivery, globally and per account") {
	auto cfg = load(with(R"("delivery": {"lmtp": "unix:run/lmtp", "lmtp_timeout_s": 30},
		"domains": {"example.org": {}},
		"accounts": {
			"alice": {"domain": "example.org"},
			"bob": {"domain": "example.org", "delivery": {"lmtp": "inet:[::1]:24", "lmtp_recipient": "bob"}},
			"carol": {"domain": "example.org", "delivery": {"lmtp": null}}})"));
	CHECK(cfg->delivery.lmtp.unix_path == "/etc/tern/run/lmtp");  // relative to the config's folder
	CHECK(cfg->delivery.lmtp_timeout_s == 30);
	CHECK(cfg->accounts.at("alice").lmtp == cfg->delivery.lmtp);
	CHECK(cfg->accounts.at("alice").lmtp_recipient == "");
	CHECK(cfg->accounts.at("bob").lmtp.ip == "::1");
	CHECK(cfg->accounts.at("bob").lmtp.port == 24);
	CHECK(cfg->accounts.at("bob").lmtp.text() == "inet:[::1]:24");
	CHECK(cfg->accounts.at("bob").lmtp_recipient == "bob");
	CHECK(cfg->accounts.at("carol").lmtp.empty());  // null: the Maildir whatever the default
	CHECK(cfg->summary().find("lmtp inet:[::1]:24: bob\nlmtp unix:/etc/tern/run/lmtp: alice\nconfig ok\n") !=
	      std::string::npos);

	// Without the key, every account keeps its Maildir.
	cfg = load(with(R"("domains": {"example.org": {}}, "accounts": {"alice": {"domain": "example.org"}})"));
	CHECK(cfg->accounts.at("alice").lmtp.empty());
	CHECK(cfg->delivery.lmtp_timeout_s == 120);
	CHECK(cfg->summary().find("lmtp") == std::string::npos);

	CHECK(
	    error_of(with(R"("delivery": {"lmtp": "127.0.0.1:24"})")) ==
	    "tern.json: delivery.lmtp: expected \"unix:/path/to/socket\" or \"inet:IP:port\" (\"inet:[IPv6]:port\"), got "
	    "\"127.0.0.1:24\"");
	CHECK(error_of(with(R"("delivery": {"lmtp": "inet:localhost:24"})")).find("delivery.lmtp: expected") !=
	      std::string::npos);
	CHECK(error_of(with(R"("delivery": {"lmtp": "inet:127.0.0.1"})")).find("delivery.lmtp: expected") !=
	      std::string::npos);
	CHECK(error_of(with(R"("delivery": {"lmtp": "unix:"})")).find("delivery.lmtp: expected") != std::string::npos);
	CHECK(error_of(with(R"("delivery": {"lmtp_timeout_s": 0})")) ==
	      "tern.json: delivery.lmtp_timeout_s: must be positive");
	CHECK(error_of(with(R"("delivery": {"maildir": true})")) == "tern.json: delivery.maildir: unknown key");
	CHECK(error_of(with(R"("domains": {"example.org": {}}, "accounts": {"a": {"domain": "example.org",
		"delivery": {"lmtp": "inet:127.0.0.1:99999"}}})"))
	          .find("accounts.a.delivery.lmtp: expected") != std::string::npos);
	CHECK(error_of(with(R"("domains": {"example.org": {}}, "accounts": {"a": {"domain": "example.org",
		"delivery": {"lmtp_recipient": "<a@b>"}}})")) ==
	      "tern.json: accounts.a.delivery.lmtp_recipient: expected an address or user name without spaces or angle "
	      "brackets, got \"<a@b>\"");
}

TEST_CASE("config: message history, junk folder rules and delivery-rate limits") {
	const std::string account_prefix =
	    R"("domains": {"example.org": {}}, "accounts": {"a": {"domain": "example.org", )";
	auto cfg = load(with(account_prefix + R"j("junk_folders": "^(junk|spam|quarantine)",
	    "delivery_rate_limits": {"messages_per_minute": [5, 10, 20], "mib_per_day": [1, 2, 3]}}},
	    "message_history": {"max_age_days": 30, "scan_interval_s": 5})j"));
	const auto& a = cfg->accounts.at("a");
	CHECK(a.junk_folder_rules.junk == "^(junk|spam|quarantine)");
	CHECK(a.junk_folder_rules.neutral == tern::inbound::FolderRules{}.neutral);
	CHECK(a.delivery_rate_limits[0].messages_per_minute == 5);
	CHECK(a.delivery_rate_limits[2].messages_per_minute == 20);
	CHECK(a.delivery_rate_limits[1].bytes_per_day == 2 * 1024 * 1024);
	// Unset levels keep the defaults.
	CHECK(a.delivery_rate_limits[0].messages_per_day ==
	      tern::inbound::default_delivery_rate_limits()[0].messages_per_day);
	CHECK(cfg->message_history.max_age_days == 30);
	CHECK(cfg->message_history.scan_interval_s == 5);
	CHECK(load(with(""))->message_history.scan_interval_s == 60);

	CHECK(error_of(with(account_prefix + R"j("neutral_folders": "^(inbox"}})j"))
	          .rfind("tern.json: accounts.a.neutral_folders: invalid regular expression \"^(inbox\"", 0) == 0);
	CHECK(
	    error_of(with(account_prefix + R"("delivery_rate_limits": {"messages_per_minute": [1, 2]}}})")) ==
	    "tern.json: accounts.a.delivery_rate_limits.messages_per_minute: expected an array of 3 positive integers");
	CHECK(error_of(with(account_prefix + R"("delivery_rate_limits": {"bytes": [1, 2, 3]}}})")) ==
	      "tern.json: accounts.a.delivery_rate_limits.bytes: unknown key");
	CHECK(error_of(with(R"("message_history": {"scan_interval_s": 0})")) ==
	      "tern.json: message_history.scan_interval_s: must be positive");
}

TEST_CASE("config: milters of a listener") {
	auto cfg = load(with(R"("listeners": {"p": {"smtp": {}, "milters": [
		{"address": "inet:127.0.0.1:8891"},
		{"address": "inet:[::1]:11332", "default_action": "accept",
		 "timeouts_ms": {"connect": 100, "command": 200, "end_of_message": 300}},
		{"address": "unix:run/milter.sock"}]}})"));
	const auto& ms = cfg->listeners.at("p").milters;
	REQUIRE(ms.size() == 3);
	CHECK(ms[0].ip == "127.0.0.1");
	CHECK(ms[0].port == 8891);
	CHECK(ms[0].tempfail_when_down);
	CHECK(ms[0].connect_timeout_ms == 30000);
	CHECK(ms[0].command_timeout_ms == 30000);
	CHECK(ms[0].end_of_message_timeout_ms == 300000);
	CHECK(ms[1].ip == "::1");
	CHECK_FALSE(ms[1].tempfail_when_down);
	CHECK(ms[1].end_of_message_timeout_ms == 300);
	CHECK(ms[2].path == "/etc/tern/run/milter.sock");
	CHECK(cfg->listeners.at("p").milters.size() == 3);

	CHECK(error_of(with(R"("listeners": {"p": {"milters": [{"address": "inet:localhost:1"}]}})")) ==
	      "tern.json: listeners.p.milters[0].address: expected \"inet:IP:PORT\" with an IP address, got "
	      "\"inet:localhost:1\"");
	CHECK(error_of(with(R"("listeners": {"p": {"milters": [{"address": "inet:127.0.0.1"}]}})")) ==
	      "tern.json: listeners.p.milters[0].address: expected \"inet:IP:PORT\" with an IP address, got "
	      "\"inet:127.0.0.1\"");
	CHECK(error_of(with(R"("listeners": {"p": {"milters": [{"address": "tcp:1"}]}})")) ==
	      "tern.json: listeners.p.milters[0].address: expected \"inet:IP:PORT\" or \"unix:/path\", got \"tcp:1\"");
	CHECK(error_of(with(R"("listeners": {"p": {"milters": [{}]}})")) ==
	      "tern.json: listeners.p.milters[0].address: required");
	CHECK(error_of(
		  with(R"("listeners": {"p": {"milters": [{"address": "unix:/m", "default_action": "reject"}]}})")) ==
	      "tern.json: listeners.p.milters[0].default_action: expected \"tempfail\" or \"accept\", got \"reject\"");
	CHECK(error_of(
		  with(R"("listeners": {"p": {"milters": [{"address": "unix:/m", "timeouts_ms": {"read": 1}}]}})")) ==
	      "tern.json: listeners.p.milters[0].timeouts_ms.read: unknown key");
	CHECK(error_of(with(
		  R"("listeners": {"p": {"milters": [{"address": "unix:/m", "timeouts_ms": {"command": 0}}]}})")) ==
	      "tern.json: listeners.p.milters[0].timeouts_ms.command: must be positive");
	CHECK(error_of(with(R"("listeners": {"p": {"milters": {}}})")) ==
	      "tern.json: listeners.p.milters: expected an array");
}

// doc/behaviour.md §12 "The address mail leaves from": the model's rule for
// the listeners' addresses as sources of outgoing connections.
TEST_CASE("config: the SMTP listeners' one IPv4 and one IPv6 address are where outgoing mail leaves from") {
	auto source = [](const std::string& listeners) {
		auto cfg = load(with(R"("listeners": )" + listeners));
		return cfg->outbound_source.ipv4 + " " + cfg->outbound_source.ipv6;
	};
	CHECK(source(R"({"p": {"ips": ["192.0.2.1"], "smtp": {}}})") == "192.0.2.1 ");
	CHECK(source(R"({"p": {"ips": ["192.0.2.1", "2001:db8::1"], "smtp": {}}})") == "192.0.2.1 2001:db8::1");
	CHECK(source(R"({"p": {"ips": ["2001:DB8:0::1"], "smtp": {}}})") == " 2001:db8::1");
	// Over several listeners; an address named twice (two ports) is one.
	CHECK(source(R"({"a": {"ips": ["192.0.2.1"], "smtp": {}},
	                 "b": {"ips": ["2001:db8::1", "192.0.2.1"], "smtp": {"port": 2525}}})") ==
	      "192.0.2.1 2001:db8::1");
	// Listeners without SMTP do not count, nor those behind a proxy.
	CHECK(source(R"({"a": {"ips": ["192.0.2.1"], "smtp": {}}, "b": {"ips": ["192.0.2.9"], "submission": {}}})") ==
	      "192.0.2.1 ");
	CHECK(source(R"({"a": {"ips": ["192.0.2.1"], "smtp": {}},
	                 "b": {"ips": ["10.0.0.5"], "smtp": {"port": 2525}, "proxy_protocol": true,
	                       "trusted_proxies": ["10.0.0.1"]}})") == "192.0.2.1 ");
	// Two of a family, a wildcard, or the default ips: the kernel chooses,
	// for both families.
	CHECK(source(R"({"p": {"ips": ["192.0.2.1", "192.0.2.2", "2001:db8::1"], "smtp": {}}})") == " ");
	CHECK(
	    source(
		R"({"a": {"ips": ["192.0.2.1"], "smtp": {}}, "b": {"ips": ["192.0.2.2"], "smtp": {"port": 2525}}})") ==
	    " ");
	CHECK(source(R"({"p": {"ips": ["2001:db8::1", "0.0.0.0"], "smtp": {}}})") == " ");
	CHECK(source(R"({"p": {"ips": ["::"], "smtp": {}}})") == " ");
	CHECK(source(R"({"p": {"smtp": {}}})") == " ");
	CHECK(source(R"({})") == " ");
}

TEST_CASE("config: a connection binds the source of its destination's family; a loopback one only to loopback") {
	Config::OutboundSource both{"192.0.2.1", "2001:db8::1"};
	CHECK(both.for_destination("198.51.100.7") == "192.0.2.1");
	CHECK(both.for_destination("2001:db8:5::25") == "2001:db8::1");
	CHECK(both.for_destination("not an address") == "");
	Config::OutboundSource v4_only{"192.0.2.1", ""};
	CHECK(v4_only.for_destination("2001:db8:5::25") == "");
	// RFC 1122 3.2.1.3 (g), RFC 4291 2.5.3: a loopback address reaches no
	// other host (doc/behaviour.md D41).
	Config::OutboundSource loopback{"127.0.0.2", "::1"};
	CHECK(loopback.for_destination("127.0.0.1") == "127.0.0.2");
	CHECK(loopback.for_destination("::1") == "::1");
	CHECK(loopback.for_destination("198.51.100.7") == "");
	CHECK(loopback.for_destination("2001:db8:5::25") == "");
	// A relay on this host (smarthost 127.0.0.1) sees the loopback
	// address its clients come from, not the public one.
	CHECK(both.for_destination("127.0.0.1") == "");
	CHECK(both.for_destination("::1") == "");
	// A smarthost on a private network sees the host's address on that
	// network, chosen by the kernel; a private source (a host behind NAT)
	// is bound for hosts in the world only (a relay on a VPN's 10.8.0.0/24
	// would not know the LAN address 192.168.1.5).
	for (const char* lan : {"10.1.2.3", "172.16.0.9", "172.31.255.1", "192.168.1.25", "100.64.0.1", "169.254.3.4",
	                        "fd00::25", "fe80::1"})
		CHECK_MESSAGE(both.for_destination(lan) == "", lan);
	for (const char* world : {"172.32.0.1", "100.128.0.1", "192.169.0.1", "fe00::1", "2001:db8:5::25"})
		CHECK_MESSAGE(both.for_destination(world) != "", world);
	Config::OutboundSource behind_nat{"192.168.1.5", "fd00::5"};
	CHECK(behind_nat.for_destination("10.1.2.3") == "");
	CHECK(behind_nat.for_destination("192.168.1.1") == "");
	CHECK(behind_nat.for_destination("fd00::25") == "");
	CHECK(behind_nat.for_destination("198.51.100.7") == "192.168.1.5");
	CHECK(behind_nat.for_destination("2001:db8:5::25") == "fd00::5");
	CHECK(behind_nat.for_destination("127.0.0.1") == "");
}

TEST_CASE("config: a listener knows whether its ips were given") {
	auto cfg = load(
	    with(R"("listeners": {"a": {"smtp": {}}, "b": {"ips": ["0.0.0.0", "::"], "smtp": {"port": 2525}}})"));
	CHECK(cfg->listeners.at("a").ips_defaulted);
	CHECK(cfg->listeners.at("a").ips == std::vector<std::string>{"0.0.0.0", "::"});
	CHECK_FALSE(cfg->listeners.at("b").ips_defaulted);
}
