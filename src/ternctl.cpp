// ternctl: administration and diagnostics for tern (man/ternctl.8).
// Global options come before the command. Exit status: 0 success, 1 a
// negative answer (for `check`: an invalid config), 2 a usage error or a
// config that cannot be loaded for another command.
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/privileges.h"
#include "inbound/junk_filter.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/dns_records.h"
#include "mailauth/dnsbl.h"
#include "mailauth/spf.h"
#include "message/header_parse.h"
#include "message/submission.h"
#include "net/tls.h"
#include "net/udns_resolver.h"
#include "net/unix_socket.h"
#include "queue/ctl.h"
#include "server/dkim_sign.h"
#include "server/dnsbl_health_cache.h"
#include "server/inbound_ctl.h"
#include "sasl/saslprep.h"
#include "sasl/secrets.h"
#include "smtp/parser.h"
#include "store/db.h"
#include "store/junk_counts.h"
#include "util/control_protocol.h"
#include "util/ipaddr.h"
#include "util/strings.h"

using namespace tern;

namespace {

const char* usage_text =
    "usage: ternctl [-c FILE] [--dns IP[:PORT]] COMMAND [ARGS]\n"
    "commands:\n"
    "  check        validate the config (as ternd -n)\n"
    "  passwd ACCOUNT\n"
    "               set ACCOUNT's password, read as one line from stdin\n"
    "  checkpassword PROGRAM [ARGS]\n"
    "               the checkpassword interface (for Dovecot's passdb):\n"
    "               check user NUL password NUL from fd 3, run PROGRAM\n"
    "  spf check IP MAILFROM [HELO]\n"
    "               evaluate SPF for MAILFROM (or HELO when MAILFROM is <>)\n"
    "  dkim verify [FILE]\n"
    "               verify every DKIM-Signature of a message (stdin default)\n"
    "  dkim sign [FILE]\n"
    "               sign a message as the domain of its From header\n"
    "  dkim genkey rsa|ed25519 [--bits N] --out FILE\n"
    "               write a new private key, print its DNS TXT record\n"
    "  dmarc lookup DOMAIN\n"
    "               print the DMARC record that applies to DOMAIN\n"
    "  dmarc reports [DOMAIN] | tlsrpt reports [DOMAIN]\n"
    "               list the DMARC aggregate / TLS reports kept, one line each\n"
    "  junk check ACCOUNT [FILE]\n"
    "               junk probability of a message and its most telling words\n"
    "  junk train ACCOUNT --junk|--ham [--remove] [FILE]\n"
    "               train ACCOUNT's junk filter with a message (stdin default)\n"
    "  dnsbl check ZONE [IP]\n"
    "               check a DNS blocklist's health (RFC 5782 5) and whether it lists IP\n"
    "  setup records DOMAIN\n"
    "               print the DNS records to publish for DOMAIN (zone-file syntax)\n"
    "  queue list | show ID | kick [ID] | drop ID | rebuild\n"
    "               inspect and steer the outbound queue; rebuild restores\n"
    "               lost queue records from the queue files\n";

// Exit statuses (doc/behaviour.md "Details that scripts and tests rely on").
constexpr int exit_ok = 0;
constexpr int exit_negative = 1;
constexpr int exit_usage = 2;

int usage() {
	std::cerr << usage_text;
	return exit_usage;
}

int usage(const std::string& why) {
	std::cerr << "ternctl: " << why << "\n";
	return usage();
}

// Global options, as given before the command.
struct Globals {
	std::string config_path = TERN_SYSCONFDIR "/tern/tern.json";
	bool config_given = false;  // -c was on the command line
	std::string dns;            // --dns IP[:PORT], "" when absent
};

int cmd_check(const std::string& path) {
	try {
		auto cfg = config::Config::load_file(path);
		// As `ternd -n`: the certificate loads and `user` reaches its files.
		core::StartCheck check = core::check_start(*cfg, cfg->pid_file, core::CheckFor::config_check);
		if (auto problem = net::certificate_problem(cfg->tls.cert_file, cfg->tls.key_file))
			check.errors.push_back(*problem);
		for (const auto& w : check.warnings) std::cerr << "warning: " << w << "\n";
		for (const auto& e : check.errors) std::cerr << "error: " << e << "\n";
		if (!check.errors.empty()) return 1;
		std::cout << cfg->summary();
		return 0;
	} catch (const std::exception& e) {
		std::cerr << "error: " << e.what() << "\n";
		return 1;
	}
}

// Thrown by the commands; carries the exit status.
struct CommandError {
	int status;
	std::string message;
};

// Run as root, switches to the config's `user` before the database is
// opened, so every file this process creates there (environment regions,
// log files, databases) belongs to the daemon's user as if ternd had made
// it; data_dir itself is made and handed over as ternd does at its start.
void become_config_user(const config::Config& cfg) {
	if (geteuid() != 0 || cfg.user.empty()) return;
	auto user = core::lookup_user(cfg.user);
	if (!user) throw CommandError{exit_negative, "error: user \"" + cfg.user + "\" not found"};
	std::error_code ec;
	std::filesystem::create_directories(cfg.data_dir, ec);
	if (ec || chown(cfg.data_dir.c_str(), user->uid, user->gid) != 0)
		throw CommandError{exit_negative,
		                   "error: handing " + cfg.data_dir + " to " + user->name + ": " +
		                       (ec ? ec.message() : std::string(std::strerror(errno)))};
	core::become_user(*user);
}

// How long ternd may take to answer a control request (a write waits for
// the log fsync, which a busy disk can delay).
constexpr int control_answer_timeout_ms = 300 * 1000;

// Sends `words` to the ternd that serves data_dir (its control socket,
// man/ternd.8) and returns its answer; nullopt when no ternd listens there
// (no socket file, or a stale one), in which case the caller opens the
// database itself. A ternd that is there but does not answer is an error:
// opening the environment under it would be the very risk the socket avoids.
std::optional<control::Answer> ask_ternd(const std::string& data_dir, const std::vector<std::string>& words) {
	std::string path = data_dir + "/control.sock";
	UniqueFd fd = net::connect_unix(path);
	if (!fd) {
		int err = errno;
		// No socket file, a stale one, or a path ternd could not have bound.
		if (err == ENOENT || err == ECONNREFUSED || err == ENAMETOOLONG) return std::nullopt;
		throw CommandError{exit_negative, "error: cannot reach ternd at " + path + ": " + std::strerror(err)};
	}
	std::string request = control::format_request(words);
	if (!net::send_all(fd.get(), request)) {
		int err = errno;
		throw CommandError{exit_negative, "error: sending to ternd at " + path + ": " + std::strerror(err)};
	}
	std::string line;
	char buf[65536];
	for (;;) {
		pollfd p{fd.get(), POLLIN, 0};
		int ready = ::poll(&p, 1, control_answer_timeout_ms);
		if (ready < 0 && errno == EINTR) continue;
		if (ready <= 0) throw CommandError{exit_negative, "error: no answer from ternd at " + path};
		ssize_t n = ::read(fd.get(), buf, sizeof buf);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) break;
		line.append(buf, static_cast<size_t>(n));
		if (line.back() == '\n') break;
	}
	fd.reset();
	auto answer = control::parse_answer(line);
	if (!answer) throw CommandError{exit_negative, "error: ternd at " + path + " gave no valid answer"};
	return answer;
}

// Prints ternd's answer as if this process had done the work.
int relay(const control::Answer& answer) {
	std::cout << answer.out << std::flush;
	std::cerr << answer.err << std::flush;
	return answer.status;
}

// Stores the derived secrets (never the password) of an account from the
// config. While ternd runs, ternd stores them (only the secrets cross its
// control socket); otherwise this process opens the database.
int cmd_passwd(const std::string& path, const std::string& account) {
	std::shared_ptr<const config::Config> cfg;
	try {
		cfg = config::Config::load_file(path);
	} catch (const std::exception& e) {
		std::cerr << "error: " << e.what() << "\n";
		return 2;
	}
	if (!cfg->accounts.count(account)) {
		std::cerr << "error: no such account: " << account << "\n";
		return 1;
	}
	std::string password;
	std::getline(std::cin, password);
	while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) password.pop_back();
	if (password.empty()) {
		std::cerr << "error: empty password\n";
		return 1;
	}
	// RFC 5802 2.2 Normalize(): SASLprep as a stored string (RFC 4013,
	// RFC 3454 7), so every mechanism matches the password in whatever
	// Unicode form a client sends it.
	auto prepared = sasl::saslprep(password, sasl::SaslprepUse::stored);
	std::fill(password.begin(), password.end(), '\0');
	if (!prepared || prepared->empty()) {
		std::cerr << "error: the password has characters SASLprep (RFC 4013) does not allow\n";
		return 1;
	}
	password = std::move(*prepared);
	try {
		std::string blob = sasl::StoredSecrets::derive(password).serialize();
		std::fill(password.begin(), password.end(), '\0');
		if (auto answer = ask_ternd(cfg->data_dir, {"passwd", account, blob})) return relay(*answer);
		become_config_user(*cfg);
		store::Env env(cfg->data_dir);
		env.set_password_secrets(account, blob);
	} catch (const CommandError& e) {
		std::cerr << e.message << "\n";
		return e.status;
	} catch (const std::exception& e) {
		std::cerr << "error: " << e.what() << "\n";
		return 1;
	}
	std::cout << "password updated for " << account << "\n";
	return 0;
}

// ------------------------------------------------------------ checkpassword

// The checkpassword interface (qmail's, as Dovecot's passdb and userdb
// "checkpassword" drivers call it): fd 3 carries user NUL password NUL
// timestamp NUL (at most 512 bytes); on success the program runs argv with
// USER and HOME set. Exit 1: wrong password or no such user; 111: could not
// check now; 2: not called as checkpassword. Dovecot's lookups without a
// password set AUTHORIZED=1: then 3 means no such user, and AUTHORIZED=2
// tells its checkpassword-reply that the user was found.
constexpr int checkpassword_bad = 1;
constexpr int checkpassword_misuse = 2;
constexpr int checkpassword_unknown_user = 3;
constexpr int checkpassword_temporary = 111;
constexpr size_t checkpassword_max_input = 512;

// Whether the database holds `password` for `account`, read here (ternd
// is not running). Run as root, as Dovecot runs checkpassword, the
// database is opened by a child that became the config's user, so that
// the files it may create there (regions, a log) stay the daemon's and
// ternd can open them next; this process keeps its user, which the program
// it runs next reports to Dovecot. nullopt: cannot tell.
std::optional<bool> password_in_database(const config::Config& cfg, const std::string& account,
                                         const std::string& password) {
	auto check = [&]() -> std::optional<bool> {
		store::Env env(cfg.data_dir);
		auto blob = env.password_secrets(account);
		if (!blob) return false;
		auto secrets = sasl::StoredSecrets::parse(*blob);
		return secrets && secrets->check_password(password);
	};
	if (geteuid() != 0 || cfg.user.empty()) return check();
	enum : int { matches = 0, differs = 1, unknown = 2 };
	// An inherited SIG_IGN would have the child reaped unseen (waitpid: ECHILD).
	::signal(SIGCHLD, SIG_DFL);
	pid_t child = ::fork();
	if (child < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
	if (child == 0) {
		int code = unknown;
		try {
			become_config_user(cfg);
			std::optional<bool> good = check();
			code = !good ? unknown : *good ? matches : differs;
		} catch (const CommandError& e) {
			std::cerr << "ternctl checkpassword: " << e.message << "\n";
		} catch (const std::exception& e) {
			std::cerr << "ternctl checkpassword: " << e.what() << "\n";
		}
		::_exit(code);
	}
	int status = 0;
	while (::waitpid(child, &status, 0) < 0)
		if (errno != EINTR) return std::nullopt;
	if (!WIFEXITED(status) || WEXITSTATUS(status) == unknown) return std::nullopt;
	return WEXITSTATUS(status) == matches;
}

// Whether tern's database holds `password` for `account`: through ternd
// while it runs, else from the database directly. nullopt: cannot tell.
std::optional<bool> check_tern_password(const config::Config& cfg, const std::string& account,
                                        const std::string& password) {
	try {
		if (auto answer = ask_ternd(cfg.data_dir, {"checkpassword", account, password})) {
			if (answer->status == 0 && answer->out == "yes\n") return true;
			if (answer->status == 1 && answer->out == "no\n") return false;
			std::cerr << "ternctl checkpassword: " << answer->err;
			return std::nullopt;
		}
		return password_in_database(cfg, account, password);
	} catch (const CommandError& e) {
		std::cerr << "ternctl checkpassword: " << e.message << "\n";
	} catch (const std::exception& e) {
		std::cerr << "ternctl checkpassword: " << e.what() << "\n";
	}
	return std::nullopt;
}

// The checkpassword input on fd 3: "user NUL password NUL ...", at most
// 512 bytes; nullopt (after a message) when it cannot be read.
static std::optional<std::string> read_checkpassword_input() {
	std::string input;
	char buf[checkpassword_max_input + 1];
	for (;;) {
		ssize_t n = ::read(3, buf, sizeof buf);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) {
			std::cerr << "ternctl checkpassword: reading fd 3: " << std::strerror(errno) << "\n";
			return std::nullopt;
		}
		if (n == 0) return input;
		input.append(buf, static_cast<size_t>(n));
		if (input.size() > checkpassword_max_input) {
			std::cerr << "ternctl checkpassword: more than 512 bytes on fd 3\n";
			return std::nullopt;
		}
	}
}

int cmd_checkpassword(const Globals& g, const std::vector<std::string>& program) {
	std::optional<std::string> read = read_checkpassword_input();
	if (!read) return checkpassword_misuse;
	std::string& input = *read;
	size_t user_end = input.find('\0');
	size_t password_end = user_end == std::string::npos ? user_end : input.find('\0', user_end + 1);
	if (password_end == std::string::npos) {
		std::cerr << "ternctl checkpassword: expected user NUL password NUL on fd 3\n";
		return checkpassword_misuse;
	}
	std::string user = input.substr(0, user_end);
	std::string password = input.substr(user_end + 1, password_end - user_end - 1);
	std::fill(input.begin(), input.end(), '\0');
	const char* authorized = getenv("AUTHORIZED");
	bool lookup_only = authorized && std::string_view(authorized) == "1";

	std::shared_ptr<const config::Config> cfg;
	try {
		cfg = config::Config::load_file(g.config_path);
	} catch (const std::exception& e) {
		std::cerr << "ternctl checkpassword: " << e.what() << "\n";
		return checkpassword_temporary;
	}
	// The login is an account's name or one of its addresses.
	const config::Account* account = nullptr;
	if (auto it = cfg->accounts.find(user); it != cfg->accounts.end()) {
		account = &it->second;
	} else if (auto addr = smtp::parse_address(user); addr && !addr->ip) {
		account = cfg->account_for_address(addr->localpart, addr->domain.ascii);
	}
	if (!account) return lookup_only ? checkpassword_unknown_user : checkpassword_bad;

	if (lookup_only) {
		// A userdb lookup; a passdb credentials lookup wants a stored
		// password scheme, which tern does not keep.
		if (getenv("CREDENTIALS_LOOKUP")) {
			std::cerr
			    << "ternctl checkpassword: tern keeps no password Dovecot could use for a credentials lookup\n";
			return checkpassword_bad;
		}
		setenv("AUTHORIZED", "2", 1);
	} else {
		// RFC 4013: the password as a query string, as PLAIN and LOGIN do.
		auto prepared = sasl::saslprep(password, sasl::SaslprepUse::query);
		std::fill(password.begin(), password.end(), '\0');
		if (!prepared || prepared->empty()) return checkpassword_bad;
		auto good = check_tern_password(*cfg, account->name, *prepared);
		std::fill(prepared->begin(), prepared->end(), '\0');
		if (!good) return checkpassword_temporary;
		if (!*good) return checkpassword_bad;
	}
	// Dovecot takes the user name from USER (the account, so each account
	// is one mailbox) and the home from HOME: the folder that holds the
	// account's Maildir, so "maildir:~/Maildir" finds tern's layout.
	setenv("USER", account->name.c_str(), 1);
	std::string home = account->maildir;
	while (home.size() > 1 && home.back() == '/') home.pop_back();
	size_t slash = home.rfind('/');
	home = slash == 0 || slash == std::string::npos ? "/" : home.substr(0, slash);
	setenv("HOME", home.c_str(), 1);
	if (program.empty()) return 0;
	std::vector<char*> argv;
	for (const auto& a : program) argv.push_back(const_cast<char*>(a.c_str()));
	argv.push_back(nullptr);
	execvp(argv[0], argv.data());
	std::cerr << "ternctl checkpassword: cannot run " << program[0] << ": " << std::strerror(errno) << "\n";
	return checkpassword_temporary;
}

// ------------------------------------------------------------ shared parts

// The config for a diagnostic command. Diagnostics need no config: with
// --dns and without -c none is read, and a missing default file is fine.
// A config that is named or present but does not load is exit 2 (SPEC).
std::shared_ptr<const config::Config> diagnostic_config(const Globals& g) {
	if (!g.config_given && (!g.dns.empty() || access(g.config_path.c_str(), F_OK) != 0)) return nullptr;
	try {
		return config::Config::load_file(g.config_path);
	} catch (const std::exception& e) {
		throw CommandError{exit_usage, std::string("error: ") + e.what()};
	}
}

std::shared_ptr<const config::Config> required_config(const Globals& g) {
	try {
		return config::Config::load_file(g.config_path);
	} catch (const std::exception& e) {
		throw CommandError{exit_usage, std::string("error: ") + e.what()};
	}
}

// A private libev loop with the daemon's resolver on it, for commands that
// make one asynchronous check and wait for its answer.
class LoopResolver {
public:
	LoopResolver(const Globals& g, const config::Config* cfg) : loop_(ev_loop_new(0)) {
		if (!loop_) throw CommandError{exit_negative, "error: cannot create an event loop"};
		std::vector<std::string> servers;
		if (!g.dns.empty())
			servers.push_back(g.dns);
		else if (cfg)
			servers = cfg->dns.servers;
		int64_t timeout_ms = cfg ? cfg->dns.timeout_ms : config::default_dns_timeout_ms;
		try {
			resolver_ = std::make_unique<net::UdnsResolver>(loop_, servers, timeout_ms);
		} catch (const std::exception& e) {
			ev_loop_destroy(loop_);
			// A bad --dns value is a usage error; anything else a failure.
			throw CommandError{g.dns.empty() ? exit_negative : exit_usage,
			                   std::string("error: ") + e.what()};
		}
	}
	~LoopResolver() {
		resolver_.reset();
		ev_loop_destroy(loop_);
	}
	LoopResolver(const LoopResolver&) = delete;
	LoopResolver& operator=(const LoopResolver&) = delete;

	mailauth::Resolver& resolver() { return *resolver_; }

	// Runs the loop until `finished` says so. Every query ends by the
	// resolver's own deadline, so this terminates.
	void run_until(const std::function<bool()>& finished) {
		while (!finished()) ev_run(loop_, EVRUN_ONCE);
	}

private:
	struct ev_loop* loop_;
	std::unique_ptr<net::UdnsResolver> resolver_;
};

// The whole of FILE, or of stdin for "" and "-".
std::string read_input(const std::string& path) {
	std::string data;
	if (path.empty() || path == "-") {
		data.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
		return data;
	}
	std::ifstream in(path, std::ios::binary);
	if (!in) throw CommandError{exit_usage, "error: cannot read " + path + ": " + std::strerror(errno)};
	data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
	return data;
}

// Messages in files usually have bare LF line ends; DKIM hashes the SMTP
// form, where every line ends in CRLF (RFC 5322 2.1, RFC 6376 3.4).

std::string local_hostname(const config::Config* cfg) {
	if (cfg && !cfg->hostname.empty()) return cfg->hostname;
	char name[256] = {};
	if (gethostname(name, sizeof(name) - 1) != 0 || !name[0]) return "unknown";
	return name;
}

// ------------------------------------------------------------ spf check

struct MailFrom {
	std::string localpart;
	std::string domain;  // ASCII; "" for the null reverse path
};

// A MAIL FROM argument as given on the command line: "<>" or "" for the
// null reverse path, else local@domain with or without angle brackets.
// Whatever else is given is still evaluated, so the operator sees what SPF
// makes of it: a local part that does not parse (spaces, stray quotes) is
// taken as is, text without "@" is a domain with the local part
// "postmaster" (RFC 7208 4.3), and a domain that is no host name (e.g.
// "a..example.com") gives "none" (RFC 7208 4.3). `domain` is "" only for
// the null reverse path; `empty_domain` marks "user@".
struct MailFromArg {
	MailFrom from;
	bool empty_domain = false;
};

MailFromArg parse_mailfrom(std::string text) {
	if (text.size() >= 2 && text.front() == '<' && text.back() == '>') text = text.substr(1, text.size() - 2);
	if (text.empty()) return {};
	if (auto addr = smtp::parse_address(text); addr && !addr->ip)
		return {MailFrom{addr->localpart, addr->domain.ascii}};
	size_t at = text.rfind('@');
	if (at == std::string::npos) return {MailFrom{"", ascii_lower(text)}};
	std::string domain = ascii_lower(text.substr(at + 1));
	return {MailFrom{text.substr(0, at), domain}, domain.empty()};
}

struct Helo {
	std::string domain;  // ASCII, "" for an address literal
	std::optional<IpAddr> ip;
};

// A HELO argument: an address literal "[1.2.3.4]" / "[IPv6:2001:db8::1]"
// (RFC 5321 4.1.3), else a name. A name that is no fully qualified domain
// (a single label, a space) is kept as given: checking it gives "none" and
// %{h} expands to it (RFC 7208 4.3, 7.3), as in an SMTP session.
Helo parse_helo(const std::string& text) {
	if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
		std::string inner = text.substr(1, text.size() - 2);
		if (istarts_with(inner, "IPv6:")) inner = inner.substr(5);
		if (auto ip = IpAddr::parse(inner)) return Helo{"", ip};
	}
	if (auto d = smtp::parse_domain(text)) return Helo{d->ascii, std::nullopt};
	return Helo{ascii_lower(text), std::nullopt};
}

int cmd_spf(const Globals& g, const std::vector<std::string>& args) {
	if (args.empty() || args[0] != "check" || args.size() < 3 || args.size() > 4) return usage();
	auto ip = IpAddr::parse(args[1]);
	if (!ip) return usage("spf check: not an IP address: " + args[1]);
	auto [from, empty_domain] = parse_mailfrom(args[2]);
	if (empty_domain) {
		// "user@": no domain to look up (RFC 7208 4.3).
		std::cout << mailauth::spf_status_name(mailauth::SpfStatus::none) << "\n";
		return exit_ok;
	}
	Helo helo;
	if (args.size() == 4) helo = parse_helo(args[3]);

	auto cfg = diagnostic_config(g);
	LoopResolver lr(g, cfg.get());

	mailauth::SpfArgs spf_args;
	spf_args.remote_ip = *ip;
	spf_args.mailfrom_localpart = from.localpart;
	spf_args.mailfrom_domain = from.domain;
	spf_args.helo_domain = helo.domain;
	spf_args.helo_ip = helo.ip;
	spf_args.local_hostname = local_hostname(cfg.get());

	bool done = false;
	mailauth::SpfReceived received;
	std::string explanation;
	mailauth::spf_verify(lr.resolver(), 1, spf_args, [&](mailauth::SpfReceived r, std::string expl, bool) {
		received = std::move(r);
		explanation = std::move(expl);
		done = true;
	});
	lr.run_until([&] { return done; });

	std::cout << mailauth::spf_status_name(received.result) << "\n";
	if (!explanation.empty()) std::cout << "explanation: " << explanation << "\n";
	// Why an error is an error goes to stderr, so stdout keeps the format
	// scripts rely on.
	if (!received.problem.empty() &&
	    (received.result == mailauth::SpfStatus::temperror || received.result == mailauth::SpfStatus::permerror))
		std::cerr << "problem: " << received.problem << "\n";
	return exit_ok;
}

// ------------------------------------------------------------ dkim

// error="…" with quotes and backslashes escaped, so the line stays parseable.
std::string quote(const std::string& text) {
	std::string out = "\"";
	for (char c : text) {
		if (c == '"' || c == '\\') out += '\\';
		out += (c == '\r' || c == '\n') ? ' ' : c;
	}
	return out + "\"";
}

int cmd_dkim_verify(const Globals& g, const std::vector<std::string>& args) {
	if (args.size() > 2) return usage();
	std::string message = to_crlf(read_input(args.size() == 2 ? args[1] : ""));
	auto cfg = diagnostic_config(g);
	LoopResolver lr(g, cfg.get());

	bool done = false;
	std::vector<mailauth::dkim::Result> results;
	mailauth::dkim::verify_message(lr.resolver(), 1, message, [&](std::vector<mailauth::dkim::Result> r) {
		results = std::move(r);
		done = true;
	});
	lr.run_until([&] { return done; });

	if (results.empty()) {
		std::cout << "none\n";
		return exit_negative;
	}
	bool all_pass = true;
	for (const auto& r : results) {
		std::cout << mailauth::dkim::status_name(r.status) << " d=" << r.domain() << " s=" << r.selector()
			  << " a=" << r.algorithm();
		if (!r.error.empty()) std::cout << " error=" << quote(r.error);
		std::cout << "\n";
		all_pass = all_pass && r.status == mailauth::dkim::Status::pass;
	}
	return all_pass ? exit_ok : exit_negative;
}

// Signs as ternd signs submitted mail (server/dkim_sign.h): the From
// address's domain's selectors in `sign` order, with i= naming the sender,
// and the keys loaded with the configuration.
int cmd_dkim_sign(const Globals& g, const std::vector<std::string>& args) {
	if (args.size() > 2) return usage();
	auto cfg = required_config(g);
	std::string message = to_crlf(read_input(args.size() == 2 ? args[1] : ""));

	// RFC 6376 5.4: the From field must be present (and single) to be signed.
	message::FromResult from = message::parse_single_from(message);
	if (!from.ok) throw CommandError{exit_negative, "error: " + from.error};
	const std::string domain = ascii_lower(from.address.domain.ascii);
	auto it = cfg->domains.find(domain);
	if (it == cfg->domains.end() || it->second.dkim_sign.empty())
		throw CommandError{exit_negative, "error: no DKIM signing keys configured for domain " + domain};
	// A key that did not load is named, rather than left out of the result.
	for (const std::string& selector : it->second.dkim_sign) {
		auto sel = it->second.dkim_selectors.find(selector);
		if (sel == it->second.dkim_selectors.end())
			throw CommandError{exit_negative, "error: domain " + domain + ": unknown selector " + selector};
		if (!sel->second.key.valid()) throw CommandError{exit_negative, "error: " + sel->second.key_error};
	}
	std::string signatures;
	for (const auto& options :
	     server::dkim_sign_options(*cfg, domain, from.address.localpart, std::time(nullptr))) {
		std::string sign_error;
		auto field = mailauth::dkim::sign_message(options, message, &sign_error);
		if (!field) throw CommandError{exit_negative, "error: " + sign_error};
		signatures += *field;
	}
	std::cout << signatures << message;
	std::cout.flush();
	return std::cout ? exit_ok : exit_negative;
}

int cmd_dkim_genkey(const std::vector<std::string>& args) {
	std::optional<mailauth::dkim::KeyType> type;
	std::optional<int> bits;
	std::string out;
	for (size_t i = 1; i < args.size(); i++) {
		const std::string& a = args[i];
		if (a == "--bits" && i + 1 < args.size()) {
			const std::string& n = args[++i];
			if (n.empty() || n.size() > 5 || !std::all_of(n.begin(), n.end(), ::isdigit))
				return usage("dkim genkey: --bits wants a number: " + n);
			bits = std::stoi(n);
		} else if (a == "--out" && i + 1 < args.size()) {
			out = args[++i];
		} else if (!type && a == "rsa") {
			type = mailauth::dkim::KeyType::rsa;
		} else if (!type && a == "ed25519") {
			type = mailauth::dkim::KeyType::ed25519;
		} else {
			return usage("dkim genkey: unexpected argument: " + a);
		}
	}
	if (!type || out.empty()) return usage("dkim genkey: needs rsa|ed25519 and --out FILE");
	if (bits && *type == mailauth::dkim::KeyType::ed25519)
		return usage("dkim genkey: --bits applies to rsa keys only");
	if (bits && (*bits < mailauth::dkim::min_rsa_bits || *bits > 8192))
		return usage("dkim genkey: --bits must be between " + std::to_string(mailauth::dkim::min_rsa_bits) +
		             " and 8192");

	std::string error;
	auto key = mailauth::dkim::generate_key(*type, bits.value_or(2048), &error);
	if (!key) throw CommandError{exit_negative, "error: " + error};
	// Never replace an existing key by accident: its public half may be
	// published. The file is private to the owner from its creation on.
	UniqueFd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	if (!fd) throw CommandError{exit_negative, "error: cannot create " + out + ": " + std::strerror(errno)};
	::fchmod(fd.get(), 0600);  // despite the umask
	// A half-written key is removed; as before, a failed fsync or close leaves it.
	TempFile partial(out);
	size_t written = 0;
	while (written < key->pem.size()) {
		ssize_t n = ::write(fd.get(), key->pem.data() + written, key->pem.size() - written);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) throw CommandError{exit_negative, "error: writing " + out + ": " + std::strerror(errno)};
		written += size_t(n);
	}
	partial.commit();
	if (::fsync(fd.get()) != 0 || fd.close() != 0)
		throw CommandError{exit_negative, "error: writing " + out + ": " + std::strerror(errno)};
	std::cout << key->txt_record << "\n";
	return exit_ok;
}

int cmd_dkim(const Globals& g, const std::vector<std::string>& args) {
	if (args.empty()) return usage();
	if (args[0] == "verify") return cmd_dkim_verify(g, args);
	if (args[0] == "sign") return cmd_dkim_sign(g, args);
	if (args[0] == "genkey") return cmd_dkim_genkey(args);
	return usage("unknown dkim command: " + args[0]);
}

// ------------------------------------------------------------ dmarc

// A command on the database: through ternd while it runs (its control
// socket), else on an environment opened here. `words` start with the
// command's name.
int run_database_command(const Globals& g, const std::vector<std::string>& words) {
	auto cfg = required_config(g);
	if (auto answer = ask_ternd(cfg->data_dir, words)) return relay(*answer);
	become_config_user(*cfg);
	store::Env env(cfg->data_dir);
	std::vector<std::string> args(words.begin() + 1, words.end());
	if (words[0] == "junk") return relay(server::run_junk_command(env, *cfg, args));
	return relay(server::run_reports_command(env, words[0] == "tlsrpt", args));
}

int cmd_reports(const Globals& g, const std::string& kind, const std::vector<std::string>& args) {
	if (args.empty() || args[0] != "reports" || args.size() > 2) return usage();
	std::vector<std::string> words{kind};
	words.insert(words.end(), args.begin(), args.end());
	return run_database_command(g, words);
}

// The message's words are taken here; only they cross the control socket.
int cmd_junk(const Globals& g, const std::vector<std::string>& args) {
	if (args.size() < 2 || (args[0] != "check" && args[0] != "train")) return usage();
	bool train = args[0] == "train";
	std::string mark, training = "add", file;
	for (size_t i = 2; i < args.size(); ++i) {
		const std::string& a = args[i];
		if (train && (a == "--junk" || a == "--ham") && mark.empty())
			mark = a.substr(2);
		else if (train && a == "--remove")
			training = "remove";
		else if (file.empty() && (a == "-" || a.empty() || a[0] != '-'))
			file = a;
		else
			return usage("junk " + args[0] + ": unexpected argument: " + a);
	}
	if (train && mark.empty()) return usage("junk train: needs --junk or --ham");
	std::string message = read_input(file);
	if (message.size() > store::junk_filter_read_limit) message.resize(store::junk_filter_read_limit);
	std::string words = server::junk_words_arg(inbound::message_words(to_crlf(message)));
	if (train) return run_database_command(g, {"junk", "train", args[1], mark, training, words});
	return run_database_command(g, {"junk", "check", args[1], words});
}

// A DOMAIN argument; a trailing dot (a fully qualified name) is allowed.
auto parse_domain_argument(std::string name) {
	if (!name.empty() && name.back() == '.') name.pop_back();
	return smtp::parse_domain(name);
}

int cmd_dmarc(const Globals& g, const std::vector<std::string>& args) {
	if (!args.empty() && args[0] == "reports") return cmd_reports(g, "dmarc", args);
	if (args.size() != 2 || args[0] != "lookup") return usage();
	auto domain = parse_domain_argument(args[1]);
	if (!domain) return usage("dmarc lookup: not a domain name: " + args[1]);

	auto cfg = diagnostic_config(g);
	LoopResolver lr(g, cfg.get());
	bool done = false;
	mailauth::DmarcLookup lookup;
	mailauth::dmarc_lookup(lr.resolver(), 1, domain->ascii, [&](mailauth::DmarcLookup l) {
		lookup = std::move(l);
		done = true;
	});
	lr.run_until([&] { return done; });

	if (lookup.record) {
		std::cout << "_dmarc." << lookup.domain << ": " << lookup.txt << "\n";
		return exit_ok;
	}
	// No policy applies. "none" alone when there is no record; the reason
	// on stderr otherwise: several records ("none" too), a failed lookup,
	// an invalid record (RFC 7489 6.6.3: either way no policy is applied).
	std::cout << mailauth::dmarc_status_name(lookup.status) << "\n";
	if (!lookup.no_record && !lookup.error.empty()) std::cerr << "problem: " << lookup.error << "\n";
	return exit_negative;
}

// ------------------------------------------------------------ dnsbl

// The health test ternd applies before using a zone, and optionally the
// lookup of one address in it.
int cmd_dnsbl(const Globals& g, const std::vector<std::string>& args) {
	if (args.size() < 2 || args.size() > 3 || args[0] != "check") return usage();
	auto domain = parse_domain_argument(args[1]);
	if (!domain) return usage("dnsbl check: not a domain name: " + args[1]);
	std::optional<IpAddr> ip;
	if (args.size() == 3) {
		ip = IpAddr::parse(args[2]);
		if (!ip) return usage("dnsbl check: not an IP address: " + args[2]);
	}
	auto cfg = diagnostic_config(g);
	LoopResolver lr(g, cfg.get());
	bool probed = false;
	server::DnsblZoneHealth health;
	server::probe_dnsbl_zone(lr.resolver(), 1, domain->ascii, [&](const server::DnsblZoneHealth& h) {
		health = h;
		probed = true;
	});
	std::optional<mailauth::DnsblStatus> listed;
	if (ip)
		mailauth::dnsbl_lookup(lr.resolver(), 1, *ip, domain->ascii,
		                       [&](mailauth::DnsblStatus s) { listed = s; });
	lr.run_until([&] { return probed && (!ip || listed); });

	std::cout << (health.healthy ? std::string("healthy") : "unhealthy: " + health.why()) << "\n";
	bool clean = health.healthy;
	if (ip) {
		const char* word = *listed == mailauth::DnsblStatus::fail ? "listed"
		    : *listed == mailauth::DnsblStatus::pass              ? "not listed"
									  : "temperror";
		std::cout << ip->to_string() << ": " << word << "\n";
		clean = clean && *listed == mailauth::DnsblStatus::pass;
	}
	return clean ? exit_ok : exit_negative;
}

// ------------------------------------------------------------ setup

// Whether `ip` can be the server's public address: not a wildcard or of
// 0.0.0.0/8 ("this network", RFC 1122 3.2.1.3 (a)), not loopback and not
// of a private network (IpAddr::local_network).
bool public_address(const IpAddr& ip) {
	if (!ip.v6 && ip.bytes[0] == 0) return false;
	return !ip.unspecified() && !ip.loopback() && !ip.local_network();
}

// `ternctl setup records DOMAIN`: the records DOMAIN publishes, from the
// config (host name, listener addresses, DKIM keys, the dmarc-reports
// address) in zone-file syntax. Exit 1 when a DKIM key does not load.
int cmd_setup(const Globals& g, const std::vector<std::string>& args) {
	if (args.size() != 2 || args[0] != "records") return usage();
	auto domain = parse_domain_argument(args[1]);
	if (!domain) return usage("setup records: not a domain name: " + args[1]);
	auto cfg = required_config(g);
	std::string ascii = ascii_lower(domain->ascii);
	auto it = cfg->domains.find(ascii);
	if (it == cfg->domains.end())
		throw CommandError{exit_negative, "error: " + ascii + " is not among the config's domains"};

	mailauth::DomainRecordFacts facts;
	facts.domain = ascii;
	facts.hostname = cfg->hostname;
	for (const auto& [listener_name, listener] : cfg->listeners)
		for (const auto& text : listener.ips)
			if (auto ip = IpAddr::parse(text); ip && public_address(*ip) &&
			    std::find(facts.ips.begin(), facts.ips.end(), ip->to_string()) == facts.ips.end())
				facts.ips.push_back(ip->to_string());
	bool all_keys = true;
	for (const auto& [selector, sel] : it->second.dkim_selectors) {
		mailauth::DomainRecordFacts::DkimKey key{selector, "", ""};
		if (auto loaded = mailauth::dkim::load_private_key(sel.private_key_file, &key.error))
			key.txt = loaded->txt_record();
		else
			all_keys = false;
		facts.dkim.push_back(key);
	}
	// RFC 7489 7.2: ask for aggregate reports only where they can be delivered.
	if (cfg->resolve_recipient("dmarc-reports", ascii).kind == config::Config::RcptKind::local)
		facts.dmarc_report_address = "dmarc-reports@" + ascii;
	std::cout << mailauth::dns_records_text(facts);
	return all_keys ? exit_ok : exit_negative;
}

}  // namespace

int main(int argc, char** argv) {
	Globals g;
	// Global options in the forms ternd takes (-c FILE, -cFILE,
	// --config FILE, --config=FILE); "+": they end at the command, whose
	// own arguments follow.
	enum { opt_dns = 1000 };
	static const option longopts[] = {{"config", required_argument, nullptr, 'c'},
	                                  {"dns", required_argument, nullptr, opt_dns},
	                                  {"version", no_argument, nullptr, 'V'},
	                                  {"help", no_argument, nullptr, 'h'},
	                                  {nullptr, 0, nullptr, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "+c:Vh", longopts, nullptr)) != -1) {
		switch (ch) {
		case 'c':
			g.config_path = optarg;
			g.config_given = true;
			break;
		case opt_dns: g.dns = optarg; break;
		case 'V': std::cout << "ternctl " TERN_VERSION "\n"; return 0;
		case 'h': std::cout << usage_text; return 0;
		default: return usage();  // getopt named the option on stderr
		}
	}
	int i = optind;
	if (i >= argc) return usage();
	std::string command = argv[i++];
	std::vector<std::string> args(argv + i, argv + argc);
	if (command == "check") return args.empty() ? cmd_check(g.config_path) : usage("check: takes no arguments");
	if (command == "passwd") return args.size() == 1 ? cmd_passwd(g.config_path, args[0]) : usage();
	if (command == "checkpassword") return cmd_checkpassword(g, args);
	try {
		if (command == "spf") return cmd_spf(g, args);
		if (command == "dkim") return cmd_dkim(g, args);
		if (command == "dmarc") return cmd_dmarc(g, args);
		if (command == "dnsbl") return cmd_dnsbl(g, args);
		if (command == "junk") return cmd_junk(g, args);
		if (command == "tlsrpt") return cmd_reports(g, "tlsrpt", args);
		if (command == "setup") return cmd_setup(g, args);
		if (command == "queue") {
			auto cfg = required_config(g);
			// Through ternd while it runs, so ternctl never joins its environment.
			std::vector<std::string> words{"queue"};
			words.insert(words.end(), args.begin(), args.end());
			if (auto answer = ask_ternd(cfg->data_dir, words)) return relay(*answer);
			become_config_user(*cfg);
			return queue::run_queue_command(*cfg, args, std::cout, std::cerr);
		}
	} catch (const CommandError& e) {
		std::cerr << e.message << "\n";
		return e.status;
	} catch (const std::exception& e) {
		std::cerr << "error: " << e.what() << "\n";
		return exit_negative;
	}
	std::cerr << "ternctl: unknown command: " << command << "\n";
	return usage();
}
