// Config queries: recipient resolution, the `-n` summary and the built-in
// localserve configuration. Loading and validation live in load.cpp.
#include <algorithm>
#include <filesystem>
#include <sstream>

#include "config/config.h"
#include "util/go_lower.h"
#include "util/ipaddr.h"
#include "util/strings.h"

namespace tern::config {

std::string canonical_localpart(const Domain& domain, std::string_view localpart) {
	// "alice+tag" delivers to "alice" when the separator is "+".
	const std::string& sep = domain.localpart_catchall_separator;
	if (!sep.empty()) {
		size_t pos = localpart.find(sep);
		if (pos != std::string_view::npos) localpart = localpart.substr(0, pos);
	}
	// Every letter folded as the model folds it (doc/behaviour.md §9),
	// UTF-8 localparts (RFC 6531) too.
	return domain.localpart_case_sensitive ? std::string(localpart) : go_lower(localpart);
}

void Config::build_address_index() {
	account_of_address.clear();
	for (const auto& [name, account] : accounts)
		for (const auto& [address, destination] : account.destinations)
			account_of_address.emplace(address, name);
}

void Config::load_dkim_keys() {
	for (auto& [name, domain] : domains)
		for (const auto& selector : domain.dkim_sign) {
			auto it = domain.dkim_selectors.find(selector);
			if (it == domain.dkim_selectors.end()) continue;
			DkimSelector& sel = it->second;
			std::string error;
			sel.key_error.clear();
			if (auto key = mailauth::dkim::load_private_key(sel.private_key_file, &error))
				sel.key = std::move(*key);
			else
				sel.key_error = sel.private_key_file + ": domains." + name + ".dkim.selectors." +
				    selector + ".private_key_file: cannot load the key: " + error;
		}
}

std::vector<const DkimSelector*> Config::unloaded_signing_keys() const {
	std::vector<const DkimSelector*> out;
	for (const auto& [name, domain] : domains)
		for (const auto& selector : domain.dkim_sign)
			if (auto it = domain.dkim_selectors.find(selector);
			    it != domain.dkim_selectors.end() && !it->second.key_error.empty())
				out.push_back(&it->second);
	return out;
}

bool Config::hosts_domain(const std::string& domain) const { return domains.count(ascii_lower(domain)) > 0; }

// Exact address first, then the domain's "@domain" catch-all destination.
// Fills account, mailbox and canonical; returns false when neither exists.
static bool find_destination(const Config& cfg, const Domain& domain, std::string_view localpart,
                             Config::RcptResult& out) {
	std::string candidates[] = {canonical_localpart(domain, localpart) + "@" + domain.name, "@" + domain.name};
	for (const std::string& address : candidates) {
		auto owner = cfg.account_of_address.find(address);
		if (owner == cfg.account_of_address.end()) continue;
		const Account& account = cfg.accounts.at(owner->second);
		out.account = &account;
		out.mailbox = account.destinations.at(address).mailbox;
		out.canonical = address;
		return true;
	}
	return false;
}

Config::RcptResult Config::resolve_recipient(const std::string& localpart, const std::string& domain_in) const {
	std::string domain = ascii_lower(domain_in);
	RcptResult result;

	auto to_postmaster = [&](std::string canonical) {
		auto account = accounts.find(postmaster.account);
		if (account == accounts.end()) {
			// No postmaster configured: the address is ours, but nobody reads it.
			result.kind = RcptKind::unknown_user;
			return result;
		}
		result.kind = RcptKind::local;
		result.account = &account->second;
		result.mailbox = postmaster.mailbox;
		result.canonical = std::move(canonical);
		return result;
	};

	// Localserve takes every address, for any domain, into its one account.
	if (localserve) return to_postmaster(localpart + "@" + (domain.empty() ? hostname : domain));

	// RFC 5321 4.5.1: "postmaster" without a domain (the <POSTMASTER> form)
	// and at our host name (or a listener's, which its greeting shows)
	// always reaches the postmaster, before any lookup.
	bool is_postmaster = iequals(localpart, "postmaster");
	if (is_postmaster && (domain.empty() || domain == hostname)) return to_postmaster("postmaster@" + hostname);
	if (is_postmaster)
		for (const auto& [name, l] : listeners)
			if (domain == l.hostname) return to_postmaster("postmaster@" + domain);

	auto hosted = domains.find(domain);
	if (hosted == domains.end()) {
		result.kind = RcptKind::foreign_domain;
		return result;
	}
	if (find_destination(*this, hosted->second, localpart, result)) {
		result.kind = RcptKind::local;
		return result;
	}
	// RFC 5321 4.5.1: every hosted domain must accept postmaster, even
	// when no destination names it.
	if (is_postmaster) return to_postmaster("postmaster@" + domain);
	result.kind = RcptKind::unknown_user;
	return result;
}

const Account* Config::account_for_address(const std::string& localpart, const std::string& domain) const {
	if (localserve) {
		auto account = accounts.find(postmaster.account);
		return account == accounts.end() ? nullptr : &account->second;
	}
	auto hosted = domains.find(ascii_lower(domain));
	if (hosted == domains.end()) return nullptr;
	RcptResult result;
	return find_destination(*this, hosted->second, localpart, result) ? result.account : nullptr;
}

const Account* Config::account_for_login(const std::string& localpart, const std::string& domain) const {
	if (!localserve) return account_for_address(localpart, domain);
	const std::string address = localpart + "@" + domain;
	for (const auto& [name, account] : accounts)
		for (const auto& [destination, unused] : account.destinations)
			if (iequals(destination, address)) return &account;
	return nullptr;
}

std::string LmtpTarget::text() const {
	if (!unix_path.empty()) return "unix:" + unix_path;
	if (ip.empty()) return "";
	return "inet:" + (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

static std::string host_port(const std::string& ip, int port) {
	bool v6 = ip.find(':') != std::string::npos;
	return (v6 ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

static std::string join_names(const std::vector<std::string>& names) {
	if (names.empty()) return "(none)";
	std::string out;
	for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
	return out;
}

std::string Config::summary() const {
	std::ostringstream out;
	out << "hostname: " << hostname << "\n";
	if (listeners.empty()) out << "listeners: (none)\n";
	for (const auto& [name, l] : listeners) {
		std::vector<std::string> parts;
		std::pair<const char*, const ListenerService*> services[] = {
		    {"smtp", &l.smtp}, {"submission", &l.submission}, {"submissions", &l.submissions}};
		for (auto [service_name, service] : services) {
			if (!service->enabled) continue;
			std::string part = service_name;
			for (const std::string& ip : l.ips) part += " " + host_port(ip, service->port);
			if (service->require_starttls) part += " (STARTTLS required)";
			parts.push_back(part);
		}
		out << "listener " << name << ": " << (parts.empty() ? "no service enabled" : join_names(parts));
		if (l.hostname != hostname) out << " (hostname " << l.hostname << ")";
		out << "\n";
	}
	std::vector<std::string> domain_names, account_names;
	for (const auto& [name, d] : domains) domain_names.push_back(name);
	for (const auto& [name, a] : accounts) account_names.push_back(name);
	out << "domains: " << join_names(domain_names) << "\n";
	out << "accounts: " << join_names(account_names) << "\n";
	// Only when some account delivers over LMTP, so Maildir setups read as before.
	std::map<std::string, std::vector<std::string>> by_lmtp;
	for (const auto& [name, a] : accounts)
		if (!a.lmtp.empty()) by_lmtp[a.lmtp.text()].push_back(name);
	for (const auto& [target, names] : by_lmtp) out << "lmtp " << target << ": " << join_names(names) << "\n";
	out << "config ok\n";
	return out.str();
}

uint64_t Config::local_submission_max_size() const {
	uint64_t largest = 0;
	for (const auto& [name, l] : listeners)
		largest = std::max<uint64_t>(largest, static_cast<uint64_t>(l.max_message_size));
	return largest != 0 ? largest : static_cast<uint64_t>(Listener{}.max_message_size);
}

// The model's rule. The listeners' addresses are the ones an operator
// publishes for the domain (in SPF, and as the names whose PTR a receiver's
// iprev check looks up), so mail leaves from them; with a wildcard, or two
// addresses of one family, nothing says which address that is, and the
// kernel chooses by its routes.
Config::OutboundSource outbound_source_of(const std::map<std::string, Listener>& listeners) {
	std::optional<IpAddr> v4, v6;
	for (const auto& [name, l] : listeners) {
		// Behind a proxy, a listener's address faces the proxy, not the
		// world: it is not the address the domain publishes.
		if (!l.smtp.enabled || l.proxy_protocol) continue;
		for (const std::string& text : l.ips) {
			std::optional<IpAddr> ip = IpAddr::parse(text);
			if (!ip || ip->unspecified()) return {};
			std::optional<IpAddr>& family = ip->v6 ? v6 : v4;
			// One address named by two listeners (two ports) is still one.
			if (family && *family != *ip) return {};
			family = ip;
		}
	}
	return {v4 ? v4->to_string() : "", v6 ? v6->to_string() : ""};
}

std::string Config::OutboundSource::for_destination(const std::string& destination) const {
	std::optional<IpAddr> to = IpAddr::parse(destination);
	if (!to) return "";
	const std::string& source = to->v6 ? ipv6 : ipv4;
	std::optional<IpAddr> from = IpAddr::parse(source);
	if (!from) return "";
	// A loopback address cannot reach another host (RFC 1122 3.2.1.3 (g),
	// RFC 4291 2.5.3), and a relay on this host (a smarthost or content
	// filter on 127.0.0.1) trusts the loopback address its clients come
	// from: a source is bound only where both are loopback or neither is
	// (doc/behaviour.md D41).
	if (from->loopback() != to->loopback()) return "";
	// Likewise a relay on a private network (RFC 1918, RFC 4193, the other
	// ranges of IpAddr::local_network) knows the host by its address on
	// that network, the one the kernel takes for the route: the listener's
	// address, public or private (a host behind NAT), is for the world.
	if (to->local_network()) return "";
	return source;
}

std::shared_ptr<const Config> Config::localserve_config(const std::string& data_dir) {
	namespace fs = std::filesystem;
	auto cfg = std::make_shared<Config>();
	cfg->localserve = true;
	cfg->hostname = "localhost";
	cfg->data_dir = fs::absolute(data_dir.empty() ? "." : data_dir).lexically_normal().string();
	while (cfg->data_dir.size() > 1 && cfg->data_dir.back() == '/') cfg->data_dir.pop_back();
	cfg->log.level = log::Level::info;
	cfg->log.syslog = false;
	// ternd makes a self-signed certificate for localhost here on first start.
	cfg->tls.cert_file = cfg->data_dir + "/tls/cert.pem";
	cfg->tls.key_file = cfg->data_dir + "/tls/key.pem";
	// Applications under test should not wait.
	cfg->delays_ms.bad_client = 0;
	cfg->delays_ms.auth_fail = 0;
	cfg->delays_ms.unknown_recipients = 0;

	Listener l;
	l.name = "localserve";
	l.ips = {"127.0.0.1", "::1"};
	l.hostname = cfg->hostname;
	l.smtp.enabled = true;
	l.smtp.port = localserve_smtp_port;
	l.smtp.require_starttls = false;
	l.smtp.first_time_sender_delay_ms = 0;
	l.submission.enabled = true;
	l.submission.port = localserve_submission_port;
	l.submission.require_starttls = false;  // offered, not required
	l.submissions.enabled = true;
	l.submissions.port = localserve_submissions_port;
	cfg->listeners.emplace(l.name, l);

	Domain d;
	d.name = "localhost";
	d.localpart_catchall_separator = "+";
	cfg->domains.emplace(d.name, d);

	Account a;
	a.name = "tern";
	a.domain = "localhost";
	a.maildir = cfg->data_dir + "/accounts/tern/Maildir";
	a.destinations.emplace("tern@localhost", Destination{});
	cfg->accounts.emplace(a.name, a);
	cfg->postmaster.account = "tern";
	cfg->metrics.listen = "127.0.0.1:" + std::to_string(localserve_metrics_port);
	cfg->build_address_index();
	return cfg;
}

}  // namespace tern::config
