// Loading and validating the config file (doc/behaviour.md "Config file").
//
// Every object is checked against the keys it may hold before any value is
// read, so a typo is reported as an unknown key rather than as a confusing
// follow-on error. Every error names the dotted key path, with "[i]" for
// array elements, so `ternd -n` can point at the exact spot.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <tuple>

#include <sys/stat.h>
#include <unistd.h>

#include <idn2.h>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "util/ipaddr.h"
#include "util/mailbox_name.h"
#include "util/strings.h"

namespace tern::config {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::string join(const std::string& path, std::string_view key) {
	return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string element(const std::string& path, size_t index) { return path + "[" + std::to_string(index) + "]"; }

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

const json* member(const json& object, std::string_view key) {
	auto it = object.find(key);
	return it == object.end() ? nullptr : &*it;
}

// RFC 1035 2.3.1 preferred name syntax (letters, digits, hyphens; labels of
// 1-63 octets, 253 in all), lower-cased. Non-ASCII names are converted to
// A-labels first (IDNA2008, RFC 5891). Returns "" when the name is invalid.
std::string normalize_domain(std::string_view name) {
	std::string ascii(name);
	if (!is_ascii(name)) {
		char* converted = nullptr;
		int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(ascii.c_str()),
		                        reinterpret_cast<uint8_t**>(&converted), IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
		if (rc != IDN2_OK) return "";
		ascii = converted;
		idn2_free(converted);
	}
	ascii = ascii_lower(ascii);
	if (ascii.empty() || ascii.size() > max_dns_name_len) return "";
	std::string_view last_label;
	for (std::string_view label : split(ascii, '.')) {
		if (label.empty() || label.size() > max_dns_label_len || label.front() == '-' || label.back() == '-')
			return "";
		for (char c : label)
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return "";
		last_label = label;
	}
	// An all-numeric last label makes the name look like an IPv4 address.
	if (std::all_of(last_label.begin(), last_label.end(), [](char c) { return c >= '0' && c <= '9'; })) return "";
	return ascii;
}

// A DKIM selector is a sequence of DNS labels (RFC 6376 3.1); underscores
// are tolerated since they occur in practice.
bool valid_selector(std::string_view name) {
	if (name.empty() || name.size() > max_dns_label_len * 4) return false;
	for (std::string_view label : split(name, '.')) {
		if (label.empty() || label.size() > max_dns_label_len) return false;
		for (char c : label)
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
			      c == '_'))
				return false;
	}
	return true;
}

// Splits "host", "host:port", "[v6]" or "[v6]:port". Returns false when the
// text is malformed; `port` stays -1 when none was given.
bool split_host_port(std::string_view text, std::string& host, int& port, bool& bracketed) {
	port = -1;
	bracketed = false;
	std::string_view rest;
	if (!text.empty() && text.front() == '[') {
		size_t close = text.find(']');
		if (close == std::string_view::npos) return false;
		host = std::string(text.substr(1, close - 1));
		rest = text.substr(close + 1);
		bracketed = true;
		if (!rest.empty() && rest.front() != ':') return false;
	} else {
		size_t colon = text.find(':');
		if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos)
			return false;  // several colons: an IPv6 address that needs brackets
		host = std::string(text.substr(0, colon));
		if (colon != std::string_view::npos) rest = text.substr(colon);
	}
	if (host.empty()) return false;
	if (!rest.empty()) {
		std::string_view digits = rest.substr(1);
		if (digits.empty() || digits.size() > 5) return false;
		int n = 0;
		for (char c : digits) {
			if (c < '0' || c > '9') return false;
			n = n * 10 + (c - '0');
		}
		if (n < 1 || n > max_port) return false;
		port = n;
	}
	return true;
}

// Reads one parsed JSON document into a Config, with the file name and base
// folder used for error messages and relative paths.
class Loader {
public:
	Loader(std::string file, const std::string& base_dir) : file_(std::move(file)) {
		fs::path base = base_dir.empty() ? fs::current_path() : fs::path(base_dir);
		if (base.is_relative()) base = fs::absolute(base);
		base_dir_ = base.lexically_normal();
	}

	[[noreturn]] void fail(const std::string& path, const std::string& message) const {
		throw ConfigError(file_, path, message);
	}

	// Checks that `v` is an object holding only `allowed` keys.
	const json& object(const json& v, const std::string& path,
	                   std::initializer_list<std::string_view> allowed) const {
		if (!v.is_object()) fail(path, "expected an object");
		for (const auto& item : v.items())
			if (std::find(allowed.begin(), allowed.end(), item.key()) == allowed.end())
				fail(join(path, item.key()), "unknown key");
		return v;
	}

	// An object whose keys are names chosen by the user (listeners, domains…).
	const json& map(const json& v, const std::string& path) const {
		if (!v.is_object()) fail(path, "expected an object");
		return v;
	}

	const json& array(const json& v, const std::string& path) const {
		if (!v.is_array()) fail(path, "expected an array");
		return v;
	}

	std::string string(const json& v, const std::string& path) const {
		if (!v.is_string()) fail(path, "expected a string");
		return without_nul(v.get<std::string>(), path);
	}

	// null reads as "".
	std::string nullable_string(const json& v, const std::string& path) const {
		if (v.is_null()) return "";
		if (!v.is_string()) fail(path, "expected a string or null");
		return without_nul(v.get<std::string>(), path);
	}

	// A "\u0000" in a string would cut it short wherever the system reads
	// it (a path, a host name), after -n had said the whole was fine.
	std::string without_nul(std::string text, const std::string& path) const {
		if (text.find('\0') != std::string::npos) fail(path, "must not contain a NUL character (\\u0000)");
		return text;
	}

	bool boolean(const json& v, const std::string& path) const {
		if (!v.is_boolean()) fail(path, "expected a boolean");
		return v.get<bool>();
	}

	enum class Range { any, non_negative, positive, port };

	int64_t integer(const json& v, const std::string& path, Range range) const {
		if (!v.is_number_integer()) fail(path, "expected an integer");
		if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
			fail(path, "integer out of range");
		int64_t n = v.get<int64_t>();
		switch (range) {
		case Range::any: break;
		case Range::non_negative:
			if (n < 0) fail(path, "must not be negative");
			break;
		case Range::positive:
			if (n <= 0) fail(path, "must be positive");
			break;
		case Range::port:
			if (n < 1 || n > max_port) fail(path, "port must be between 1 and " + std::to_string(max_port));
			break;
		}
		return n;
	}

	std::vector<std::string> strings(const json& v, const std::string& path) const {
		std::vector<std::string> out;
		for (size_t i = 0; i < array(v, path).size(); i++) out.push_back(string(v[i], element(path, i)));
		return out;
	}

	// A file or folder name, made absolute relative to the config's folder.
	std::string file_path(const json& v, const std::string& path) const {
		std::string text = string(v, path);
		if (text.empty()) fail(path, "must not be empty");
		return absolute(text);
	}

	// "" and null mean "none".
	std::string optional_file_path(const json& v, const std::string& path) const {
		std::string text = nullable_string(v, path);
		return text.empty() ? text : absolute(text);
	}

	// "unix:PATH" or "inet:IP:PORT" ("inet:[IPv6]:PORT"); null or "" =
	// none. An IP address, not a name: the loop resolves no names for this.
	LmtpTarget lmtp_target(const json& v, const std::string& path) const {
		LmtpTarget t;
		std::string text = nullable_string(v, path);
		if (text.empty()) return t;
		if (text.rfind("unix:", 0) == 0 && text.size() > 5) {
			t.unix_path = absolute(text.substr(5));
			return t;
		}
		std::string host;
		int port = -1;
		bool bracketed = false;
		if (text.rfind("inet:", 0) == 0 && split_host_port(text.substr(5), host, port, bracketed) && port > 0 &&
		    IpAddr::parse(host)) {
			t.ip = host;
			t.port = port;
			return t;
		}
		fail(path,
		     "expected \"unix:/path/to/socket\" or \"inet:IP:port\" (\"inet:[IPv6]:port\"), got " +
		         in_quotes(text));
	}

	std::string absolute(const std::string& text) const {
		fs::path p(text);
		if (p.is_relative()) p = base_dir_ / p;
		std::string out = p.lexically_normal().string();
		while (out.size() > 1 && out.back() == '/') out.pop_back();
		return out;
	}

	std::string domain_name(const json& v, const std::string& path) const {
		std::string text = string(v, path);
		std::string name = normalize_domain(text);
		if (name.empty()) fail(path, "not a valid domain name: " + in_quotes(text));
		return name;
	}

	void load(const json& root, Config& cfg) const;

	// The first line of a file that holds a secret. Like ssh with private
	// keys, a file that group or others may read is refused: the secret has
	// probably leaked already, and a config that accepted it would hide that.
	std::string read_password_file(const std::string& file, const std::string& path) const {
		struct stat st {};
		if (::stat(file.c_str(), &st) != 0) fail(path, file + ": " + std::strerror(errno));
		if (!S_ISREG(st.st_mode)) fail(path, file + ": not a regular file");
		if (st.st_mode & (S_IRGRP | S_IROTH)) {
			char mode[8];
			std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
			fail(path,
			     file + ": readable by group or others (mode " + mode +
			         "); make it readable by its owner only (chmod 600)");
		}
		std::ifstream in(file, std::ios::binary);
		std::string line;
		if (!in || !std::getline(in, line))
			fail(path, file + ": " + (in.bad() || !in.is_open() ? std::strerror(errno) : "empty file"));
		if (!line.empty() && line.back() == '\r') line.pop_back();
		if (line.empty()) fail(path, file + ": the first line (the password) is empty");
		return line;
	}

private:
	void load_log(const json& v, const std::string& path, Config& cfg) const;
	void load_dns(const json& v, const std::string& path, Config& cfg) const;
	void load_auth(const json& v, const std::string& path, Config& cfg) const;
	void load_tls(const json& v, const std::string& path, Config& cfg) const;
	void load_limits(const json& v, const std::string& path, Config& cfg) const;
	std::vector<int64_t> limit_levels(const json& v, const std::string& path) const;
	Listener load_listener(const std::string& name, const json& v, const std::string& path,
	                       const Config& cfg) const;
	ListenerService load_service(const json* v, const std::string& path, int default_port,
	                             bool default_require_starttls, bool is_smtp) const;
	Domain load_domain(const std::string& name, const json& v, const std::string& path) const;
	void load_dkim(const json& v, const std::string& path, Domain& domain) const;
	Milter load_milter(const json& v, const std::string& path) const;
	Account load_account(const std::string& name, const json& v, const std::string& path, const Config& cfg,
	                     std::map<std::string, std::string>& owner_of_address) const;
	void load_account_delivery(const json& v, const std::string& path, Account& a) const;
	void load_destination(const std::string& key, const json& v, const std::string& path, const Config& cfg,
	                      Account& a, std::map<std::string, std::string>& owner_of_address) const;
	void load_folder_rules(const json& v, const std::string& path, Account& a) const;
	void load_delivery_rate_limits(const json& v, const std::string& path, Account& a) const;
	void load_delays(const json& v, const std::string& path, Config& cfg) const;
	void load_timeouts(const json& v, const std::string& path, Config& cfg) const;
	void load_message_history(const json& v, const std::string& path, Config& cfg) const;
	void load_delivery(const json& v, const std::string& path, Config& cfg) const;
	void load_hosting(const json& root, Config& cfg) const;
	void load_metrics(const json& v, const std::string& path, Config& cfg) const;
	JunkFilterSettings load_junk_filter(const json& v, const std::string& path) const;
	double fraction(const json& v, const std::string& path) const;
	void load_postmaster(const json* v, const std::string& path, Config& cfg) const;
	void load_queue(const json& v, const std::string& path, Config& cfg) const;
	void check_port_conflicts(const Config& cfg) const;

	std::string file_;
	fs::path base_dir_;
};

void Loader::load(const json& root, Config& cfg) const {
	if (!root.is_object()) fail("", "expected a JSON object at the top level");
	object(root, "",
	       {"hostname", "data_dir", "user", "pid_file", "log", "dns", "tls", "delays_ms", "timeouts_s", "limits",
	        "auth", "listeners", "domains", "accounts", "postmaster", "queue", "metrics", "delivery",
	        "message_history"});

	const json* hostname = member(root, "hostname");
	if (!hostname) fail("hostname", "required");
	cfg.hostname = domain_name(*hostname, "hostname");

	if (auto v = member(root, "data_dir")) cfg.data_dir = file_path(*v, "data_dir");
	if (auto v = member(root, "user")) cfg.user = string(*v, "user");
	if (auto v = member(root, "pid_file")) cfg.pid_file = optional_file_path(*v, "pid_file");
	if (auto v = member(root, "log")) load_log(*v, "log", cfg);
	if (auto v = member(root, "dns")) load_dns(*v, "dns", cfg);
	if (auto v = member(root, "tls")) load_tls(*v, "tls", cfg);
	if (auto v = member(root, "auth")) load_auth(*v, "auth", cfg);

	if (auto v = member(root, "delays_ms")) load_delays(*v, "delays_ms", cfg);
	if (auto v = member(root, "timeouts_s")) load_timeouts(*v, "timeouts_s", cfg);
	if (auto v = member(root, "limits")) load_limits(*v, "limits", cfg);
	if (auto v = member(root, "message_history")) load_message_history(*v, "message_history", cfg);
	// Before accounts: they inherit delivery.lmtp.
	if (auto v = member(root, "delivery")) load_delivery(*v, "delivery", cfg);
	load_hosting(root, cfg);
	// Listeners last: they fall back to the global hostname.
	if (auto v = member(root, "listeners")) {
		for (const auto& item : map(*v, "listeners").items()) {
			std::string path = join("listeners", item.key());
			cfg.listeners.emplace(item.key(), load_listener(item.key(), item.value(), path, cfg));
		}
	}
	cfg.outbound_source = outbound_source_of(cfg.listeners);
	if (auto v = member(root, "queue")) load_queue(*v, "queue", cfg);
	if (auto v = member(root, "metrics")) load_metrics(*v, "metrics", cfg);
	check_port_conflicts(cfg);
}

void Loader::load_delays(const json& v, const std::string& path, Config& cfg) const {
	object(v, path, {"bad_client", "auth_fail", "unknown_recipients"});
	auto& d = cfg.delays_ms;
	if (auto x = member(v, "bad_client")) d.bad_client = integer(*x, join(path, "bad_client"), Range::non_negative);
	if (auto x = member(v, "auth_fail")) d.auth_fail = integer(*x, join(path, "auth_fail"), Range::non_negative);
	if (auto x = member(v, "unknown_recipients"))
		d.unknown_recipients = integer(*x, join(path, "unknown_recipients"), Range::non_negative);
}

void Loader::load_timeouts(const json& v, const std::string& path, Config& cfg) const {
	object(v, path, {"command", "data_chunk", "data_total", "tls_handshake", "shutdown"});
	auto& t = cfg.timeouts_s;
	std::pair<const char*, int64_t*> fields[] = {{"command", &t.command},
	                                             {"data_chunk", &t.data_chunk},
	                                             {"data_total", &t.data_total},
	                                             {"tls_handshake", &t.tls_handshake},
	                                             {"shutdown", &t.shutdown}};
	for (auto [key, field] : fields)
		if (auto x = member(v, key)) *field = integer(*x, join(path, key), Range::positive);
}

void Loader::load_message_history(const json& v, const std::string& path, Config& cfg) const {
	object(v, path, {"max_age_days", "scan_interval_s"});
	if (auto x = member(v, "max_age_days"))
		cfg.message_history.max_age_days = integer(*x, join(path, "max_age_days"), Range::positive);
	if (auto x = member(v, "scan_interval_s"))
		cfg.message_history.scan_interval_s = integer(*x, join(path, "scan_interval_s"), Range::positive);
}

void Loader::load_delivery(const json& v, const std::string& path, Config& cfg) const {
	object(v, path, {"lmtp", "lmtp_timeout_s"});
	if (auto x = member(v, "lmtp")) cfg.delivery.lmtp = lmtp_target(*x, join(path, "lmtp"));
	if (auto x = member(v, "lmtp_timeout_s"))
		cfg.delivery.lmtp_timeout_s = integer(*x, join(path, "lmtp_timeout_s"), Range::positive);
}

// Domains before accounts (an account's domain and addresses must be
// hosted), accounts before postmaster (which names one).
void Loader::load_hosting(const json& root, Config& cfg) const {
	if (auto v = member(root, "domains")) {
		for (const auto& item : map(*v, "domains").items()) {
			std::string path = join("domains", item.key());
			Domain domain = load_domain(item.key(), item.value(), path);
			if (cfg.domains.count(domain.name))
				fail(path, "domain " + in_quotes(domain.name) + " is configured twice");
			cfg.domains.emplace(domain.name, std::move(domain));
		}
	}
	if (auto v = member(root, "accounts")) {
		std::map<std::string, std::string> owner_of_address;
		for (const auto& item : map(*v, "accounts").items()) {
			std::string path = join("accounts", item.key());
			cfg.accounts.emplace(item.key(),
			                     load_account(item.key(), item.value(), path, cfg, owner_of_address));
		}
	}
	load_postmaster(member(root, "postmaster"), "postmaster", cfg);
}

void Loader::load_metrics(const json& v, const std::string& path, Config& cfg) const {
	object(v, path, {"listen"});
	if (auto x = member(v, "listen")) {
		std::string lpath = join(path, "listen");
		std::string text = nullable_string(*x, lpath);
		std::string host;
		int port;
		bool bracketed;
		if (!text.empty()) {
			if (!split_host_port(text, host, port, bracketed) || port < 0 || !IpAddr::parse(host))
				fail(lpath, "expected \"IP:port\" or \"[IPv6]:port\", got " + in_quotes(text));
		}
		cfg.metrics.listen = text;
	}
}

void Loader::load_log(const json& v, const std::string& path, Config& cfg) const {
	object(v, path, {"level", "file", "syslog"});
	if (auto x = member(v, "level")) {
		std::string name = string(*x, join(path, "level"));
		if (!log::parse_level(name, cfg.log.level))
			fail(join(path, "level"),
			     "unknown log level " + in_quotes(name) +
			         " (expected error, info, debug, trace, traceauth or tracedata)");
	}
	if (auto x = member(v, "file")) cfg.log.file = optional_file_path(*x, join(path, "file"));
	if (auto x = member(v, "syslog")) cfg.log.syslog = boolean(*x, join(path, "syslog"));
}

void Loader::load_dns(const json& v, const std::string& path, Config& cfg) const {
	object(v, path, {"servers", "timeout_ms"});
	if (auto x = member(v, "servers")) {
		std::string servers_path = join(path, "servers");
		cfg.dns.servers = strings(*x, servers_path);
		for (size_t i = 0; i < cfg.dns.servers.size(); i++) {
			const std::string& text = cfg.dns.servers[i];
			if (IpAddr::parse(text)) continue;  // a bare address, IPv6 without brackets included
			std::string host;
			int port;
			bool bracketed;
			if (!split_host_port(text, host, port, bracketed) || !IpAddr::parse(host))
				fail(element(servers_path, i),
				     "expected \"IP\", \"IP:port\" or \"[IPv6]:port\", got " + in_quotes(text));
		}
	}
	if (auto x = member(v, "timeout_ms"))
		cfg.dns.timeout_ms = integer(*x, join(path, "timeout_ms"), Range::positive);
}

void Loader::load_auth(const json& v, const std::string& path, Config& cfg) const {
	object(v, path, {"backend", "dovecot_socket", "dovecot_timeout_ms"});
	if (auto x = member(v, "backend")) {
		std::string backend = string(*x, join(path, "backend"));
		if (backend == "tern")
			cfg.auth.backend = Config::AuthBackend::tern;
		else if (backend == "dovecot")
			cfg.auth.backend = Config::AuthBackend::dovecot;
		else
			fail(join(path, "backend"), "expected \"tern\" or \"dovecot\", got " + in_quotes(backend));
	}
	if (auto x = member(v, "dovecot_socket")) cfg.auth.dovecot_socket = file_path(*x, join(path, "dovecot_socket"));
	if (auto x = member(v, "dovecot_timeout_ms"))
		cfg.auth.dovecot_timeout_ms = integer(*x, join(path, "dovecot_timeout_ms"), Range::positive);
	if (cfg.auth.backend == Config::AuthBackend::dovecot && cfg.auth.dovecot_socket.empty())
		fail(join(path, "dovecot_socket"), "required with backend \"dovecot\"");
}

// The files are not opened here: ternd opens them when it sets up TLS (and
// again on SIGHUP), so `ternd -n` can check a config on another machine.
void Loader::load_tls(const json& v, const std::string& path, Config& cfg) const {
	object(v, path, {"cert_file", "key_file"});
	if (auto x = member(v, "cert_file")) cfg.tls.cert_file = optional_file_path(*x, join(path, "cert_file"));
	if (auto x = member(v, "key_file")) cfg.tls.key_file = optional_file_path(*x, join(path, "key_file"));
	if (!cfg.tls.cert_file.empty() && cfg.tls.key_file.empty())
		fail(join(path, "key_file"), "required when cert_file is set");
	if (cfg.tls.cert_file.empty() && !cfg.tls.key_file.empty())
		fail(join(path, "cert_file"), "required when key_file is set");
}

std::vector<int64_t> Loader::limit_levels(const json& v, const std::string& path) const {
	// One value per network size: /32, /26, /21 for IPv4, /64, /48, /32 for IPv6.
	if (array(v, path).size() != 3) fail(path, "expected an array of 3 positive integers");
	std::vector<int64_t> out;
	for (size_t i = 0; i < 3; i++) out.push_back(integer(v[i], element(path, i), Range::positive));
	return out;
}

void Loader::load_limits(const json& v, const std::string& path, Config& cfg) const {
	object(v, path, {"connection_rate_per_min", "connections", "auth_failures_per_min", "auth_failures_per_day"});
	auto& l = cfg.limits;
	std::pair<const char*, std::vector<int64_t>*> fields[] = {
	    {"connection_rate_per_min", &l.connection_rate_per_min},
	    {"connections", &l.connections},
	    {"auth_failures_per_min", &l.auth_failures_per_min},
	    {"auth_failures_per_day", &l.auth_failures_per_day}};
	for (auto [key, field] : fields)
		if (auto x = member(v, key)) *field = limit_levels(*x, join(path, key));
}

ListenerService Loader::load_service(const json* v, const std::string& path, int default_port,
                                     bool default_require_starttls, bool is_smtp) const {
	ListenerService s;
	s.port = default_port;
	s.require_starttls = default_require_starttls;
	if (!v) return s;  // an absent section is disabled
	if (is_smtp)
		object(*v, path, {"enabled", "port", "require_starttls", "dnsbl_zones", "first_time_sender_delay_ms"});
	else if (default_require_starttls)  // submission
		object(*v, path, {"enabled", "port", "require_starttls"});
	else  // submissions: implicit TLS, nothing to require
		object(*v, path, {"enabled", "port"});
	s.enabled = true;
	if (auto x = member(*v, "enabled")) s.enabled = boolean(*x, join(path, "enabled"));
	if (auto x = member(*v, "port")) s.port = int(integer(*x, join(path, "port"), Range::port));
	if (auto x = member(*v, "require_starttls")) s.require_starttls = boolean(*x, join(path, "require_starttls"));
	if (auto x = member(*v, "dnsbl_zones")) {
		std::string zones_path = join(path, "dnsbl_zones");
		for (size_t i = 0; i < array(*x, zones_path).size(); i++)
			s.dnsbl_zones.push_back(domain_name((*x)[i], element(zones_path, i)));
	}
	if (auto x = member(*v, "first_time_sender_delay_ms"))
		s.first_time_sender_delay_ms = integer(*x, join(path, "first_time_sender_delay_ms"),
		                                       Range::non_negative);
	return s;
}

Listener Loader::load_listener(const std::string& name, const json& v, const std::string& path,
                               const Config& cfg) const {
	object(v, path,
	       {"ips", "hostname", "max_message_size", "bare_newlines", "proxy_protocol", "trusted_proxies", "smtp",
	        "submission", "submissions", "milters"});
	Listener l;
	l.name = name;
	if (name.empty()) fail(path, "listener name must not be empty");
	l.ips = {"0.0.0.0", "::"};
	l.ips_defaulted = true;
	if (auto x = member(v, "ips")) {
		l.ips_defaulted = false;
		std::string ips_path = join(path, "ips");
		l.ips = strings(*x, ips_path);
		if (l.ips.empty()) fail(ips_path, "expected at least one IP address");
		for (size_t i = 0; i < l.ips.size(); i++)
			if (!IpAddr::parse(l.ips[i]))
				fail(element(ips_path, i), "not an IP address: " + in_quotes(l.ips[i]));
	}
	l.hostname = cfg.hostname;
	if (auto x = member(v, "hostname"); x && !x->is_null()) l.hostname = domain_name(*x, join(path, "hostname"));
	if (auto x = member(v, "max_message_size"))
		l.max_message_size = integer(*x, join(path, "max_message_size"), Range::positive);
	if (auto x = member(v, "bare_newlines")) {
		std::string mode = string(*x, join(path, "bare_newlines"));
		if (mode == "normalize")
			l.bare_newlines = smtp::BareNewlines::normalize;
		else if (mode == "reject")
			l.bare_newlines = smtp::BareNewlines::reject;
		else
			fail(join(path, "bare_newlines"),
			     "expected \"normalize\" or \"reject\", got " + in_quotes(mode));
	}
	if (auto x = member(v, "proxy_protocol")) l.proxy_protocol = boolean(*x, join(path, "proxy_protocol"));
	if (auto x = member(v, "trusted_proxies")) {
		std::string proxies_path = join(path, "trusted_proxies");
		l.trusted_proxies = strings(*x, proxies_path);
		for (size_t i = 0; i < l.trusted_proxies.size(); i++)
			if (!IpNet::parse(l.trusted_proxies[i]))
				fail(element(proxies_path, i),
				     "not an IP network (CIDR): " + in_quotes(l.trusted_proxies[i]));
	}
	// The PROXY header is only believed from trusted proxies; with none,
	// every connection would be closed.
	if (l.proxy_protocol && l.trusted_proxies.empty())
		fail(join(path, "trusted_proxies"), "required when proxy_protocol is true");

	l.smtp = load_service(member(v, "smtp"), join(path, "smtp"), default_smtp_port, false, true);
	l.submission = load_service(member(v, "submission"), join(path, "submission"), default_submission_port, true,
	                            false);
	l.submissions = load_service(member(v, "submissions"), join(path, "submissions"), default_submissions_port,
	                             false, false);
	if (auto x = member(v, "milters")) {
		std::string milters_path = join(path, "milters");
		for (size_t i = 0; i < array(*x, milters_path).size(); i++)
			l.milters.push_back(load_milter((*x)[i], element(milters_path, i)));
	}
	return l;
}

// A milter: "inet:IP:PORT" ("inet:[v6]:PORT" too) or "unix:/path", as
// Postfix writes them. Names are not resolved: the milter must be reachable
// without DNS.
Milter Loader::load_milter(const json& v, const std::string& path) const {
	object(v, path, {"address", "default_action", "timeouts_ms"});
	Milter m;
	const json* address = member(v, "address");
	if (!address) fail(join(path, "address"), "required");
	std::string address_path = join(path, "address");
	m.address = string(*address, address_path);
	std::string_view text = m.address;
	if (text.starts_with("unix:")) {
		m.path = absolute(std::string(text.substr(5)));
		if (text.size() == 5) fail(address_path, "expected \"unix:/path\"");
	} else if (text.starts_with("inet:")) {
		std::string host;
		bool bracketed = false;
		if (!split_host_port(text.substr(5), host, m.port, bracketed) || m.port < 0 || !IpAddr::parse(host))
			fail(address_path, "expected \"inet:IP:PORT\" with an IP address, got " + in_quotes(m.address));
		m.ip = host;
	} else {
		fail(address_path, "expected \"inet:IP:PORT\" or \"unix:/path\", got " + in_quotes(m.address));
	}
	if (auto x = member(v, "default_action")) {
		std::string action = string(*x, join(path, "default_action"));
		if (action != "tempfail" && action != "accept")
			fail(join(path, "default_action"),
			     "expected \"tempfail\" or \"accept\", got " + in_quotes(action));
		m.tempfail_when_down = action == "tempfail";
	}
	if (auto x = member(v, "timeouts_ms")) {
		std::string tpath = join(path, "timeouts_ms");
		object(*x, tpath, {"connect", "command", "end_of_message"});
		if (auto t = member(*x, "connect"))
			m.connect_timeout_ms = integer(*t, join(tpath, "connect"), Range::positive);
		if (auto t = member(*x, "command"))
			m.command_timeout_ms = integer(*t, join(tpath, "command"), Range::positive);
		if (auto t = member(*x, "end_of_message"))
			m.end_of_message_timeout_ms = integer(*t, join(tpath, "end_of_message"), Range::positive);
	}
	return m;
}

// Two enabled services, or a service and the metrics page, may not bind
// the same port on one address: ternd would fail at start, so -n says so.
// A wildcard address (0.0.0.0, ::) takes the port on every address of its
// family, so it clashes with each of them too (IPv6 sockets are V6ONLY).
void Loader::check_port_conflicts(const Config& cfg) const {
	struct Use {
		IpAddr ip;
		int port;
		std::string path;
	};
	std::vector<Use> uses;
	auto claim = [&](const std::string& text, int port, const std::string& path) {
		IpAddr ip = *IpAddr::parse(text);
		for (const Use& u : uses)
			if (u.port == port && u.ip.v6 == ip.v6 &&
			    (u.ip == ip || u.ip.unspecified() || ip.unspecified()))
				fail(path,
				     "port " + std::to_string(port) + " on " + text + " is also used by " + u.path);
		uses.push_back({ip, port, path});
	};
	for (const auto& [name, l] : cfg.listeners) {
		std::pair<const char*, const ListenerService*> services[] = {
		    {"smtp", &l.smtp}, {"submission", &l.submission}, {"submissions", &l.submissions}};
		for (auto [service_name, service] : services) {
			if (!service->enabled) continue;
			std::string path = join(join(join("listeners", name), service_name), "port");
			for (const std::string& ip : l.ips) claim(ip, service->port, path);
		}
	}
	std::string host;
	int port = 0;
	bool bracketed = false;
	if (!cfg.metrics.listen.empty() && split_host_port(cfg.metrics.listen, host, port, bracketed))
		claim(host, port, "metrics.listen");
}

void Loader::load_dkim(const json& v, const std::string& path, Domain& domain) const {
	object(v, path, {"selectors", "sign"});
	if (auto x = member(v, "selectors")) {
		std::string selectors_path = join(path, "selectors");
		for (const auto& item : map(*x, selectors_path).items()) {
			std::string spath = join(selectors_path, item.key());
			if (!valid_selector(item.key())) fail(spath, "not a valid DKIM selector name");
			const json& sv = object(item.value(), spath,
			                        {"private_key_file", "canonicalization", "headers", "expiration_s"});
			DkimSelector sel;
			const json* key_file = member(sv, "private_key_file");
			if (!key_file) fail(join(spath, "private_key_file"), "required");
			// Not opened here: ternd loads keys at start and on SIGHUP.
			sel.private_key_file = file_path(*key_file, join(spath, "private_key_file"));
			if (auto c = member(sv, "canonicalization")) {
				std::string text = string(*c, join(spath, "canonicalization"));
				std::string lower = ascii_lower(text);
				size_t slash = lower.find('/');
				auto is_canon = [](std::string_view s) { return s == "simple" || s == "relaxed"; };
				if (slash == std::string::npos || !is_canon(lower.substr(0, slash)) ||
				    !is_canon(lower.substr(slash + 1)))
					fail(join(spath, "canonicalization"),
					     "expected \"header/body\", each \"simple\" or \"relaxed\", got " +
					         in_quotes(text));
				sel.header_canon = lower.substr(0, slash);
				sel.body_canon = lower.substr(slash + 1);
			}
			if (auto h = member(sv, "headers")) {
				std::string hpath = join(spath, "headers");
				sel.headers = strings(*h, hpath);
				for (size_t i = 0; i < sel.headers.size(); i++) {
					const std::string& name = sel.headers[i];
					// RFC 5322 2.2 field-name: printable ASCII except colon.
					bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
						return c > 32 && c < 127 && c != ':';
					});
					if (!ok) fail(element(hpath, i), "not a header field name: " + in_quotes(name));
				}
				// RFC 6376 5.4: the From field MUST be signed.
				if (std::none_of(sel.headers.begin(), sel.headers.end(),
				                 [](const std::string& n) { return iequals(n, "From"); }))
					fail(hpath, "must include From (RFC 6376 5.4)");
			}
			if (auto e = member(sv, "expiration_s"))
				sel.expiration_s = integer(*e, join(spath, "expiration_s"), Range::non_negative);
			domain.dkim_selectors.emplace(item.key(), std::move(sel));
		}
	}
	if (auto x = member(v, "sign")) {
		std::string sign_path = join(path, "sign");
		domain.dkim_sign = strings(*x, sign_path);
		for (size_t i = 0; i < domain.dkim_sign.size(); i++)
			if (!domain.dkim_selectors.count(domain.dkim_sign[i]))
				fail(element(sign_path, i), "no such selector " + in_quotes(domain.dkim_sign[i]));
	}
}

Domain Loader::load_domain(const std::string& name, const json& v, const std::string& path) const {
	Domain d;
	d.name = normalize_domain(name);
	if (d.name.empty()) fail(path, "not a valid domain name: " + in_quotes(name));
	object(v, path, {"localpart_catchall_separator", "localpart_case_sensitive", "dkim"});
	if (auto x = member(v, "localpart_catchall_separator")) {
		d.localpart_catchall_separator = string(*x, join(path, "localpart_catchall_separator"));
		if (d.localpart_catchall_separator.find('@') != std::string::npos)
			fail(join(path, "localpart_catchall_separator"), "must not contain \"@\"");
	}
	if (auto x = member(v, "localpart_case_sensitive"))
		d.localpart_case_sensitive = boolean(*x, join(path, "localpart_case_sensitive"));
	if (auto x = member(v, "dkim")) load_dkim(*x, join(path, "dkim"), d);
	return d;
}

Account Loader::load_account(const std::string& name, const json& v, const std::string& path, const Config& cfg,
                             std::map<std::string, std::string>& owner_of_address) const {
	// The name becomes a folder under data_dir/accounts.
	if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
		fail(path, "account name must not be empty, \".\", \"..\" or contain \"/\"");
	object(v, path,
	       {"domain", "maildir", "destinations", "rejects_mailbox", "keep_rejects", "max_outgoing_messages_per_day",
	        "max_first_time_recipients_per_day", "junk_filter", "subject_pass", "delivery", "junk_folders",
	        "neutral_folders", "delivery_rate_limits"});
	Account a;
	a.name = name;
	a.lmtp = cfg.delivery.lmtp;
	if (auto x = member(v, "delivery")) load_account_delivery(*x, join(path, "delivery"), a);
	if (auto x = member(v, "domain")) {
		std::string text = string(*x, join(path, "domain"));
		std::string domain = normalize_domain(text);
		if (domain.empty() || !cfg.domains.count(domain))
			fail(join(path, "domain"), "domain " + in_quotes(text) + " is not configured under domains");
		a.domain = domain;
	}
	a.maildir = (fs::path(cfg.data_dir) / "accounts" / name / "Maildir").string();
	if (auto x = member(v, "maildir"); x && !x->is_null()) a.maildir = file_path(*x, join(path, "maildir"));

	if (auto x = member(v, "destinations")) {
		std::string dests_path = join(path, "destinations");
		for (const auto& item : map(*x, dests_path).items())
			load_destination(item.key(), item.value(), join(dests_path, item.key()), cfg, a,
			                 owner_of_address);
	}
	if (auto x = member(v, "rejects_mailbox")) {
		a.rejects_mailbox = string(*x, join(path, "rejects_mailbox"));
		if (!valid_mailbox_name(a.rejects_mailbox))
			fail(join(path, "rejects_mailbox"),
			     "not a valid mailbox name: " + in_quotes(a.rejects_mailbox));
	}
	if (auto x = member(v, "keep_rejects")) a.keep_rejects = boolean(*x, join(path, "keep_rejects"));
	if (auto x = member(v, "max_outgoing_messages_per_day"))
		a.max_outgoing_messages_per_day = integer(*x, join(path, "max_outgoing_messages_per_day"),
		                                          Range::non_negative);
	if (auto x = member(v, "max_first_time_recipients_per_day"))
		a.max_first_time_recipients_per_day = integer(*x, join(path, "max_first_time_recipients_per_day"),
		                                              Range::non_negative);
	if (auto x = member(v, "junk_filter"); x && !x->is_null())
		a.junk_filter = load_junk_filter(*x, join(path, "junk_filter"));
	if (auto x = member(v, "subject_pass"); x && !x->is_null()) {
		std::string spath = join(path, "subject_pass");
		object(*x, spath, {"period_s"});
		if (auto p = member(*x, "period_s"))
			a.subject_pass_period_s = integer(*p, join(spath, "period_s"), Range::non_negative);
	}
	load_folder_rules(v, path, a);
	if (auto x = member(v, "delivery_rate_limits"))
		load_delivery_rate_limits(*x, join(path, "delivery_rate_limits"), a);
	return a;
}

void Loader::load_account_delivery(const json& v, const std::string& path, Account& a) const {
	object(v, path, {"lmtp", "lmtp_recipient"});
	// null: this account keeps its Maildir whatever the default.
	if (auto l = member(v, "lmtp")) a.lmtp = lmtp_target(*l, join(path, "lmtp"));
	if (auto r = member(v, "lmtp_recipient")) {
		a.lmtp_recipient = string(*r, join(path, "lmtp_recipient"));
		if (a.lmtp_recipient.empty() || a.lmtp_recipient.find_first_of("<> \t\r\n") != std::string::npos)
			fail(join(path, "lmtp_recipient"),
			     "expected an address or user name without spaces or angle brackets, got " +
			         in_quotes(a.lmtp_recipient));
	}
}

// One destination of account `a`: `key` is "local@domain", "@domain"
// (catch-all), or a bare localpart in the account's domain.
void Loader::load_destination(const std::string& key, const json& v, const std::string& dpath, const Config& cfg,
                              Account& a, std::map<std::string, std::string>& owner_of_address) const {
	size_t at = key.rfind('@');
	std::string localpart = at == std::string::npos ? key : key.substr(0, at);
	std::string domain_text = at == std::string::npos ? a.domain : key.substr(at + 1);
	if (domain_text.empty()) fail(dpath, "expected an address \"localpart@domain\" or \"@domain\"");
	std::string domain_name = normalize_domain(domain_text);
	auto domain_it = cfg.domains.find(domain_name);
	if (domain_name.empty() || domain_it == cfg.domains.end())
		fail(dpath, "domain " + in_quotes(domain_text) + " is not configured under domains");
	const Domain& domain = domain_it->second;
	std::string canonical;
	if (at == 0) {
		canonical = "@" + domain.name;
	} else {
		if (localpart.empty()) fail(dpath, "expected an address \"localpart@domain\" or \"@domain\"");
		const std::string& sep = domain.localpart_catchall_separator;
		if (!sep.empty() && localpart.find(sep) != std::string::npos)
			fail(dpath,
			     "localpart contains the catch-all separator " + in_quotes(sep) + ", so it never matches");
		canonical = canonical_localpart(domain, localpart) + "@" + domain.name;
	}
	auto [owner, inserted] = owner_of_address.emplace(canonical, a.name);
	if (!inserted)
		fail(dpath,
		     "address " + in_quotes(canonical) + " is already a destination of account " +
		         in_quotes(owner->second));
	const json& dv = object(v, dpath, {"mailbox", "dmarc_reports", "tls_reports"});
	Destination dest;
	if (auto m = member(dv, "mailbox")) {
		dest.mailbox = string(*m, join(dpath, "mailbox"));
		if (!valid_mailbox_name(dest.mailbox))
			fail(join(dpath, "mailbox"), "not a valid mailbox name: " + in_quotes(dest.mailbox));
	}
	if (auto m = member(dv, "dmarc_reports")) dest.dmarc_reports = boolean(*m, join(dpath, "dmarc_reports"));
	if (auto m = member(dv, "tls_reports")) dest.tls_reports = boolean(*m, join(dpath, "tls_reports"));
	a.destinations.emplace(canonical, dest);
}

// junk_folders and neutral_folders: regular expressions, checked here.
void Loader::load_folder_rules(const json& v, const std::string& path, Account& a) const {
	std::pair<const char*, std::string*> folder_rules[] = {{"junk_folders", &a.junk_folder_rules.junk},
	                                                       {"neutral_folders", &a.junk_folder_rules.neutral}};
	for (auto [key, rule] : folder_rules) {
		auto x = member(v, key);
		if (!x) continue;
		*rule = string(*x, join(path, key));
		try {
			std::regex check(*rule, std::regex::ECMAScript | std::regex::icase);
		} catch (const std::regex_error& e) {
			fail(join(path, key), "invalid regular expression " + in_quotes(*rule) + ": " + e.what());
		}
	}
}

// Three levels per limit, one per client network width.
void Loader::load_delivery_rate_limits(const json& v, const std::string& rpath, Account& a) const {
	object(v, rpath, {"messages_per_minute", "messages_per_day", "mib_per_minute", "mib_per_day"});
	using Field = int64_t inbound::NetworkRateLimit::*;
	constexpr int64_t mib = 1024 * 1024;
	std::tuple<const char*, Field, int64_t> fields[] = {
	    {"messages_per_minute", &inbound::NetworkRateLimit::messages_per_minute, 1},
	    {"messages_per_day", &inbound::NetworkRateLimit::messages_per_day, 1},
	    {"mib_per_minute", &inbound::NetworkRateLimit::bytes_per_minute, mib},
	    {"mib_per_day", &inbound::NetworkRateLimit::bytes_per_day, mib}};
	for (auto [key, field, unit] : fields) {
		auto levels = member(v, key);
		if (!levels) continue;
		std::vector<int64_t> values = limit_levels(*levels, join(rpath, key));
		for (size_t i = 0; i < 3 && i < values.size(); ++i) a.delivery_rate_limits[i].*field = values[i] * unit;
	}
}

// A number from 0 to 1 (a probability).
double Loader::fraction(const json& v, const std::string& path) const {
	if (!v.is_number()) fail(path, "expected a number");
	double d = v.get<double>();
	if (!(d >= 0 && d <= 1)) fail(path, "must be between 0 and 1");
	return d;
}

// The model's junk filter parameters, in snake_case.
JunkFilterSettings Loader::load_junk_filter(const json& v, const std::string& path) const {
	object(v, path, {"threshold", "top_words", "ignore_words", "rare_words", "max_power"});
	JunkFilterSettings j;
	if (auto x = member(v, "threshold")) j.threshold = fraction(*x, join(path, "threshold"));
	if (auto x = member(v, "top_words"))
		j.params.top_words = static_cast<size_t>(integer(*x, join(path, "top_words"), Range::positive));
	if (auto x = member(v, "ignore_words")) {
		j.params.ignore_band = fraction(*x, join(path, "ignore_words"));
		if (j.params.ignore_band >= 0.5)
			fail(join(path, "ignore_words"), "must be below 0.5 (it is a band around 0.5)");
	}
	if (auto x = member(v, "rare_words"))
		j.params.rare_words = integer(*x, join(path, "rare_words"), Range::non_negative);
	if (auto x = member(v, "max_power")) {
		j.params.max_power = fraction(*x, join(path, "max_power"));
		if (j.params.max_power <= 0 || j.params.max_power >= 0.5)
			fail(join(path, "max_power"), "must be above 0 and below 0.5");
	}
	return j;
}

// Without postmaster.account, a config with exactly one account uses it as
// postmaster; otherwise mail to postmaster is treated as an unknown user.
void Loader::load_postmaster(const json* v, const std::string& path, Config& cfg) const {
	bool account_given = false;
	if (v) {
		object(*v, path, {"account", "mailbox"});
		if (auto x = member(*v, "account")) {
			cfg.postmaster.account = string(*x, join(path, "account"));
			if (!cfg.accounts.count(cfg.postmaster.account))
				fail(join(path, "account"), "no such account " + in_quotes(cfg.postmaster.account));
			account_given = true;
		}
		if (auto x = member(*v, "mailbox")) {
			cfg.postmaster.mailbox = string(*x, join(path, "mailbox"));
			if (!valid_mailbox_name(cfg.postmaster.mailbox))
				fail(join(path, "mailbox"),
				     "not a valid mailbox name: " + in_quotes(cfg.postmaster.mailbox));
		}
	}
	if (!account_given && cfg.accounts.size() == 1) cfg.postmaster.account = cfg.accounts.begin()->first;
}

void Loader::load_queue(const json& v, const std::string& path, Config& cfg) const {
	object(v, path,
	       {"smarthost", "smarthost_tls", "smarthost_ca_file", "smarthost_auth", "retry_base_s", "max_attempts",
	        "max_concurrent"});
	auto& q = cfg.queue;
	if (auto x = member(v, "smarthost")) {
		std::string text = nullable_string(*x, join(path, "smarthost"));
		if (!text.empty()) {
			std::string host;
			int port;
			bool bracketed;
			bool ok = split_host_port(text, host, port, bracketed);
			if (ok && bracketed)
				ok = IpAddr::parse(host).has_value();
			else if (ok && !IpAddr::parse(host)) {
				host = normalize_domain(host);
				ok = !host.empty();
			}
			if (!ok)
				fail(join(path, "smarthost"),
				     "expected \"host\", \"host:port\" or \"[IPv6]:port\", got " + in_quotes(text));
			q.smarthost_host = host;
			q.smarthost_port = port < 0 ? default_smtp_port : port;
		}
		q.smarthost = text;
	}
	if (auto x = member(v, "smarthost_tls")) {
		std::string mode = string(*x, join(path, "smarthost_tls"));
		if (mode != "none" && mode != "opportunistic" && mode != "required" && mode != "implicit")
			fail(join(path, "smarthost_tls"),
			     "expected \"none\", \"opportunistic\", \"required\" or \"implicit\", got " +
			         in_quotes(mode));
		q.smarthost_tls = mode;
	}
	if (auto x = member(v, "smarthost_ca_file"))
		q.smarthost_ca_file = file_path(*x, join(path, "smarthost_ca_file"));
	if (auto x = member(v, "smarthost_auth")) {
		const std::string auth_path = join(path, "smarthost_auth");
		if (!x->is_null()) {
			object(*x, auth_path, {"username", "password_file"});
			auto user = member(*x, "username");
			auto file = member(*x, "password_file");
			if (!user) fail(join(auth_path, "username"), "required");
			if (!file) fail(join(auth_path, "password_file"), "required");
			q.smarthost_username = string(*user, join(auth_path, "username"));
			if (q.smarthost_username.empty()) fail(join(auth_path, "username"), "must not be empty");
			q.smarthost_password_file = file_path(*file, join(auth_path, "password_file"));
			q.smarthost_password = read_password_file(q.smarthost_password_file,
			                                          join(auth_path, "password_file"));
		}
	}
	// Verified TLS needs its CAs; a missing file is better refused now than
	// found by the first delivery. (It is parsed by the queue.)
	if (!q.smarthost_host.empty() && (q.smarthost_tls == "required" || q.smarthost_tls == "implicit") &&
	    ::access(q.smarthost_ca_file.c_str(), R_OK) != 0)
		fail(join(path, "smarthost_ca_file"), q.smarthost_ca_file + ": " + std::strerror(errno));
	if (auto x = member(v, "retry_base_s"))
		q.retry_base_s = integer(*x, join(path, "retry_base_s"), Range::positive);
	if (auto x = member(v, "max_attempts"))
		q.max_attempts = integer(*x, join(path, "max_attempts"), Range::positive);
	if (auto x = member(v, "max_concurrent"))
		q.max_concurrent = integer(*x, join(path, "max_concurrent"), Range::positive);
}

// nlohmann::json keeps the last of duplicate keys silently; a config with
// two "smtp" sections is almost surely a mistake, so the parser callback
// records the path of the first duplicate.
class DuplicateKeyFinder {
public:
	bool operator()(int, json::parse_event_t event, json& parsed) {
		switch (event) {
		case json::parse_event_t::object_start: frames_.push_back({false, 0, {}, {}}); break;
		case json::parse_event_t::array_start: frames_.push_back({true, 0, {}, {}}); break;
		case json::parse_event_t::key: {
			Frame& top = frames_.back();
			top.key = parsed.get<std::string>();
			if (!top.keys.insert(top.key).second && duplicate_.empty()) duplicate_ = current_path();
			if (top.key.find('\0') != std::string::npos && nul_key_.empty()) {
				for (char c : current_path())
					nul_key_ += c == '\0' ? std::string("\\u0000") : std::string(1, c);
			}
			break;
		}
		case json::parse_event_t::object_end:
		case json::parse_event_t::array_end:
			frames_.pop_back();
			count_element();
			break;
		case json::parse_event_t::value: count_element(); break;
		}
		return true;
	}
	const std::string& duplicate() const { return duplicate_; }
	// The path of the first key holding a "\u0000", written so.
	const std::string& nul_key() const { return nul_key_; }

private:
	struct Frame {
		bool is_array;
		size_t index;
		std::string key;
		std::set<std::string> keys;
	};
	void count_element() {
		if (!frames_.empty() && frames_.back().is_array) frames_.back().index++;
	}
	std::string current_path() const {
		std::string path;
		for (const Frame& f : frames_) path = f.is_array ? element(path, f.index) : join(path, f.key);
		return path;
	}
	std::vector<Frame> frames_;
	std::string duplicate_;
	std::string nul_key_;
};

}  // namespace

ConfigError::ConfigError(const std::string& file_, const std::string& path_, const std::string& message_)
	: std::runtime_error((file_.empty() ? "" : file_ + ": ") + (path_.empty() ? "" : path_ + ": ") + message_),
	  file(file_), path(path_), message(message_) {}

std::shared_ptr<const Config> Config::load_text(const std::string& text, const std::string& file_for_errors,
                                                const std::string& base_dir) {
	Loader loader(file_for_errors, base_dir);
	json root;
	// The finder is copied into the parser; share its findings through a pointer.
	auto finder = std::make_shared<DuplicateKeyFinder>();
	// The JSON parser takes a NUL byte for the end of its input and would
	// pass over whatever follows it.
	if (size_t nul = text.find('\0'); nul != std::string::npos) {
		size_t line_start = text.rfind('\n', nul);
		line_start = line_start == std::string::npos ? 0 : line_start + 1;
		size_t line = 1 +
		    static_cast<size_t>(
				  std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(nul), '\n'));
		loader.fail("",
		            "parse error at line " + std::to_string(line) + ", column " +
		                std::to_string(nul - line_start + 1) + ": a NUL byte");
	}
	try {
		root = json::parse(
		    text,
		    [finder](int depth, json::parse_event_t event, json& parsed) {
			    return (*finder)(depth, event, parsed);
		    },
		    true, true /* ignore // and block comments */);
	} catch (const json::parse_error& e) {
		// e.what() is "[json.exception.parse_error.101] parse error at line L, column C: ..."
		std::string message = e.what();
		size_t start = message.find("] ");
		if (start != std::string::npos) message = message.substr(start + 2);
		// Drop nlohmann's "; last read: '…'" excerpt: it shows control
		// characters as <U+000A> and the line and column already point there.
		const std::string last_read = "; last read: '";
		size_t excerpt = message.find(last_read);
		if (excerpt != std::string::npos) {
			size_t end = message.find("'; ", excerpt + last_read.size());
			message.erase(excerpt, end == std::string::npos ? std::string::npos : end + 1 - excerpt);
		}
		loader.fail("", message);
	} catch (const json::exception& e) {
		// Not a syntax error but still bad input, e.g. a number too large
		// for a double (found by fuzzing: 1e400): a ConfigError like the rest.
		std::string message = e.what();
		size_t start = message.find("] ");
		loader.fail("", start == std::string::npos ? message : message.substr(start + 2));
	}
	if (!finder->duplicate().empty()) loader.fail(finder->duplicate(), "duplicate key");
	if (!finder->nul_key().empty()) loader.fail(finder->nul_key(), "a key must not contain a NUL character");

	auto cfg = std::make_shared<Config>();
	cfg->file = file_for_errors;
	loader.load(root, *cfg);
	cfg->build_address_index();
	cfg->load_dkim_keys();
	return cfg;
}

std::shared_ptr<const Config> Config::load_file(const std::string& path) {
	std::ifstream in(path, std::ios::binary);
	if (!in) throw ConfigError(path, "", std::string("cannot open: ") + std::strerror(errno));
	// A directory opens, then reads as nothing: say what it is.
	std::error_code not_checked;
	if (fs::is_directory(path, not_checked))
		throw ConfigError(path, "", std::string("cannot open: ") + std::strerror(EISDIR));
	// Read with a bound: a config is a few kilobytes, and a huge file (or
	// an endless one, /dev/zero) would take the small machine's memory.
	std::string text;
	char buf[64 * 1024];
	while (in.read(buf, sizeof buf) || in.gcount() > 0) {
		text.append(buf, static_cast<size_t>(in.gcount()));
		if (text.size() > Config::max_file_bytes)
			throw ConfigError(path, "",
			                  "larger than " + std::to_string(Config::max_file_bytes >> 20) + " MiB");
	}
	if (in.bad()) throw ConfigError(path, "", "cannot read");
	fs::path folder = fs::path(path).parent_path();
	return load_text(text, path, folder.empty() ? "." : folder.string());
}

}  // namespace tern::config
