// The configuration: JSON (with // and /* */ comments) → an immutable Config
// snapshot. Connections keep the snapshot they started with; SIGHUP swaps in
// a new one. Every error names the key path (doc/behaviour.md "Config file").
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "inbound/junk_filter.h"
#include "inbound/delivery_rate.h"
#include "inbound/junk_marks.h"
#include "mailauth/dkim.h"
#include "smtp/data_decoder.h"
#include "smtp/replies.h"
#include "util/log.h"

namespace tern::config {

// Defaults written once: the struct members below, the loader, the built-in
// localserve config and the programs refer to these.
inline constexpr int64_t default_max_message_size = smtp::default_max_message_size;
inline constexpr int default_smtp_port = 25;          // IANA service "smtp"
inline constexpr int default_submission_port = 587;   // RFC 6409 3.1
inline constexpr int default_submissions_port = 465;  // RFC 8314 3.3
inline constexpr int max_port = 65535;
// localserve (doc/behaviour.md "localserve"): unprivileged ports on loopback.
inline constexpr int localserve_smtp_port = 1025;
inline constexpr int localserve_submission_port = 1587;
inline constexpr int localserve_submissions_port = 1465;
inline constexpr int localserve_metrics_port = 1080;
inline constexpr int64_t default_dns_timeout_ms = 5000;
inline constexpr int64_t default_history_max_age_days = 3 * 365;

// `path` is a dotted key path ("listeners.public.smtp.port", "[i]" for array
// elements); what() is "<file>: <path>: <message>".
class ConfigError : public std::runtime_error {
public:
	ConfigError(const std::string& file, const std::string& path, const std::string& message);
	std::string file, path, message;
};

struct ListenerService {
	bool enabled = false;
	int port = 0;
	bool require_starttls = false;
	std::vector<std::string> dnsbl_zones;        // smtp only
	int64_t first_time_sender_delay_ms = 15000;  // smtp only
};

// One milter of a listener (the Sendmail/Postfix mail filter protocol).
struct Milter {
	std::string address;             // as written: "inet:IP:PORT" or "unix:/path"
	std::string path;                // unix socket path ("" for inet)
	std::string ip;                  // inet: the IP address
	int port = 0;                    // inet: the port
	bool tempfail_when_down = true;  // default_action: "tempfail" (true) or "accept"
	// Postfix's milter_connect_timeout, milter_command_timeout and
	// milter_content_timeout.
	int64_t connect_timeout_ms = 30000;
	int64_t command_timeout_ms = 30000;
	int64_t end_of_message_timeout_ms = 300000;
};

struct Listener {
	std::string name;
	std::vector<std::string> ips;  // default ["0.0.0.0", "::"]
	// ips was not in the file: the defaults are bound, and ternd starts
	// without "::" on a host without IPv6 (net::bind_failure_tolerated).
	bool ips_defaulted = false;
	std::string hostname;  // resolved: listener's or global hostname
	int64_t max_message_size = default_max_message_size;
	smtp::BareNewlines bare_newlines = smtp::BareNewlines::normalize;
	bool proxy_protocol = false;
	std::vector<std::string> trusted_proxies;
	ListenerService smtp;         // default port 25
	ListenerService submission;   // default port 587, require_starttls default true
	ListenerService submissions;  // default port 465
	std::vector<Milter> milters;  // called in order during each session
};

struct DkimSelector {
	std::string private_key_file;  // absolute path after load
	std::string header_canon = "relaxed", body_canon = "relaxed";
	std::vector<std::string> headers{"From", "To", "Subject", "Date", "Message-Id"};
	int64_t expiration_s = 0;
	// The key of a signing selector, read with the configuration
	// (Config::load_dkim_keys): signing never reads the file again, so a
	// key file changed or removed later counts only from the reload that
	// loads it. Invalid when it did not load; key_error then says why:
	// "<file>: domains.<d>.dkim.selectors.<s>.private_key_file: cannot load
	// the key: <why>".
	mailauth::dkim::PrivateKey key;
	std::string key_error;
};

struct Domain {
	std::string name;                          // ASCII, lower case
	std::string localpart_catchall_separator;  // "" = none
	bool localpart_case_sensitive = false;
	std::map<std::string, DkimSelector> dkim_selectors;
	std::vector<std::string> dkim_sign;
};

struct Destination {
	std::string mailbox = "INBOX";
	// Report addresses (doc/behaviour.md §9, step 3): DMARC aggregate
	// reports (RFC 7489 7.2) and SMTP TLS reports (RFC 8460) sent here are
	// kept in the database and the copy is stored as seen.
	bool dmarc_reports = false;
	bool tls_reports = false;
};

// The account's Bayesian junk filter (doc/behaviour.md §9, step 9).
struct JunkFilterSettings {
	double threshold = 0.95;  // above it (plus jitter) a message is junk
	inbound::JunkFilterParams params;
};

// An LMTP server (RFC 2033) that takes local mail instead of the Maildir:
// "unix:PATH" or "inet:IP:PORT" in the config.
struct LmtpTarget {
	std::string unix_path;  // absolute
	std::string ip;         // IPv4 or IPv6 text, no brackets
	int port = 0;
	bool empty() const { return unix_path.empty() && ip.empty(); }
	bool operator==(const LmtpTarget&) const = default;
	// "unix:/run/dovecot/lmtp", "inet:127.0.0.1:24", "inet:[::1]:24".
	std::string text() const;
};

struct Account {
	std::string name;
	std::string domain;
	std::string maildir;  // absolute; default data_dir/accounts/<name>/Maildir
	// Address (lower-cased unless the domain is case-sensitive; "@domain" for
	// a catch-all) → destination.
	std::map<std::string, Destination> destinations;
	std::string rejects_mailbox = "Rejects";
	bool keep_rejects = false;
	int64_t max_outgoing_messages_per_day = 1000;
	int64_t max_first_time_recipients_per_day = 200;
	std::optional<JunkFilterSettings> junk_filter;  // absent: no junk filter
	int64_t subject_pass_period_s = 0;              // 0: no subject-pass tokens
	// delivery.lmtp: the account's own, else the top-level default; empty =
	// the Maildir above.
	LmtpTarget lmtp;
	// delivery.lmtp_recipient: the address given to the LMTP server for all
	// of this account's mail; "" = each recipient address as received.
	std::string lmtp_recipient;
	// Which folders mean junk, and which say nothing, when no junk keyword is
	// set (doc/behaviour.md §9 "Learning from the mailbox"); validated regexes.
	inbound::FolderRules junk_folder_rules;
	// Per client network width (/32 /26 /21, IPv6 /64 /48 /32).
	inbound::DeliveryRateLimits delivery_rate_limits = inbound::default_delivery_rate_limits();
};

struct Config {
	// The message history behind reputation and the delivery-rate limits.
	struct {
		int64_t max_age_days = default_history_max_age_days;  // older records are pruned
		int64_t scan_interval_s = 60;                         // Maildir scanner period
	} message_history;
	std::string file;      // path it was loaded from ("" for localserve)
	std::string hostname;  // ASCII
	std::string data_dir = "/var/lib/tern";
	std::string user;  // "" = do not change user
	std::string pid_file;
	struct {
		log::Level level = log::Level::info;
		std::string file;
		bool syslog = true;
	} log;
	struct {
		std::vector<std::string> servers;  // "ip" or "ip:port" / "[v6]:port"; empty = /etc/resolv.conf
		int64_t timeout_ms = default_dns_timeout_ms;
	} dns;
	struct {
		std::string cert_file, key_file;  // absolute; empty = no TLS
	} tls;
	// Who checks SMTP AUTH credentials: tern's own database, or Dovecot
	// through its auth-client socket (the exchange is relayed to it).
	enum class AuthBackend { tern, dovecot };
	struct {
		AuthBackend backend = AuthBackend::tern;
		std::string dovecot_socket;          // absolute; required with the dovecot backend
		int64_t dovecot_timeout_ms = 15000;  // per answer awaited from Dovecot
	} auth;
	struct {
		int64_t bad_client = 1000, auth_fail = 1000, unknown_recipients = 5000;
	} delays_ms;
	struct {
		int64_t command = 300, data_chunk = 180, data_total = 1800, tls_handshake = 60, shutdown = 60;
	} timeouts_s;
	struct {
		std::vector<int64_t> connection_rate_per_min{300, 900, 2700};
		std::vector<int64_t> connections{30, 90, 270};
		std::vector<int64_t> auth_failures_per_min{10, 30, 90};
		std::vector<int64_t> auth_failures_per_day{50, 150, 450};
	} limits;
	std::map<std::string, Listener> listeners;
	// The local addresses the queue's SMTP connections leave from
	// (doc/behaviour.md §12 "The address mail leaves from"), as IP text;
	// "" lets the kernel choose. The loader sets it from the listeners
	// (outbound_source_of).
	struct OutboundSource {
		std::string ipv4, ipv6;
		// The address to bind for a connection to `destination` (IP text):
		// the one of its family, "" for none.
		std::string for_destination(const std::string& destination) const;
	} outbound_source;
	std::map<std::string, Domain> domains;
	std::map<std::string, Account> accounts;
	struct {
		std::string account;
		std::string mailbox = "INBOX";
	} postmaster;
	struct {
		std::string smarthost;                        // "" = MX delivery
		std::string smarthost_host;                   // parsed from smarthost: name or IP (no brackets)
		int smarthost_port = default_smtp_port;       // parsed from smarthost, 25 when omitted
		std::string smarthost_tls = "opportunistic";  // none, opportunistic, required, implicit
		// Chain and host name of the smarthost's certificate are checked
		// against these CAs under "required" and "implicit".
		std::string smarthost_ca_file = "/etc/ssl/certs/ca-certificates.crt";
		// smarthost_auth: "" username = no AUTH. The password is read from
		// password_file at load time and must never be logged.
		std::string smarthost_username;
		std::string smarthost_password_file;
		std::string smarthost_password;
		int64_t retry_base_s = 450, max_attempts = 8, max_concurrent = 10;
	} queue;
	struct {
		std::string listen;  // "" = no metrics listener
	} metrics;
	struct {
		LmtpTarget lmtp;  // the default of accounts without their own delivery.lmtp
		// Deadline of each LMTP step (connect, each reply, each write).
		int64_t lmtp_timeout_s = 120;
	} delivery;

	// Localserve: every recipient goes to this account, special localparts apply.
	bool localserve = false;

	// Canonical destination address ("alice@example.org", "@example.org") →
	// the name of the account it belongs to. Names, not pointers, so a
	// copied Config stays valid. Filled by the loaders; call
	// build_address_index() after changing accounts by hand.
	std::map<std::string, std::string> account_of_address;
	void build_address_index();

	// Loads the key of every selector a domain signs with (dkim.sign) into
	// DkimSelector::key, or sets its key_error. The loaders call it; ternd
	// refuses to start, and a reload keeps the old configuration, when a
	// signing key did not load.
	void load_dkim_keys();
	// The signing selectors whose key did not load.
	std::vector<const DkimSelector*> unloaded_signing_keys() const;

	// Loads and validates; throws ConfigError. Relative paths are made
	// relative to the config file's folder. A file over max_file_bytes is
	// refused.
	static std::shared_ptr<const Config> load_file(const std::string& path);
	static constexpr size_t max_file_bytes = 16u << 20;
	static std::shared_ptr<const Config> load_text(const std::string& text, const std::string& file_for_errors,
	                                               const std::string& base_dir);
	// The built-in localserve configuration (doc/behaviour.md "localserve").
	static std::shared_ptr<const Config> localserve_config(const std::string& data_dir);

	// The largest message sendmail.tern may hand to ternd over the local
	// socket: the largest max_message_size of the listeners (the default
	// when there are none).
	uint64_t local_submission_max_size() const;

	// The `-n` / `ternctl check` summary: hostname, listeners and ports,
	// domains, accounts, then "config ok".
	std::string summary() const;

	// Recipient resolution (doc/behaviour.md §4 RCPT step 6).
	enum class RcptKind { local, unknown_user, foreign_domain };
	struct RcptResult {
		RcptKind kind = RcptKind::foreign_domain;
		const Account* account = nullptr;
		std::string mailbox;    // destination mailbox
		std::string canonical;  // canonical address that matched
	};
	// localpart as parsed (unquoted), domain ASCII (any case). A bare
	// postmaster (domain "") or postmaster@hostname (or a listener's
	// hostname) resolves to the postmaster account. Catch-all separator
	// stripped; lower-cased unless case-sensitive; "@domain" destinations
	// catch all; postmaster@<hosted domain> without a destination goes to
	// the postmaster too. No postmaster account → unknown_user. In
	// localserve, every address resolves to the postmaster (tern) account.
	RcptResult resolve_recipient(const std::string& localpart, const std::string& domain) const;
	// The account an address belongs to, without the postmaster forms
	// (submission's MAIL FROM; the From check judges as resolve_recipient).
	const Account* account_for_address(const std::string& localpart, const std::string& domain) const;
	// The account a login name (an address) opens. As account_for_address,
	// except in localserve, which takes mail for every address but logs in
	// only its account's own (tern@localhost).
	const Account* account_for_login(const std::string& localpart, const std::string& domain) const;
	bool hosts_domain(const std::string& domain) const;
};

// The listeners' addresses as sources of outgoing mail: the addresses
// that the listeners with SMTP enabled name, when they are at most one
// IPv4 and one IPv6 address and no wildcard; otherwise none.
Config::OutboundSource outbound_source_of(const std::map<std::string, Listener>& listeners);

// A localpart in its canonical form for `domain`: the catch-all separator
// and everything after it removed, ASCII lower-cased unless the domain is
// case-sensitive. Destination keys are stored in this form.
std::string canonical_localpart(const Domain& domain, std::string_view localpart);

}  // namespace tern::config
