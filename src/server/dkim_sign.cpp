#include "server/dkim_sign.h"

#include "smtp/parser.h"
#include "util/log.h"
#include "util/strings.h"

namespace tern::server {

namespace {
mailauth::dkim::Canon canon_of(const std::string& name) {
	return name == "simple" ? mailauth::dkim::Canon::simple : mailauth::dkim::Canon::relaxed;
}
}  // namespace

std::vector<mailauth::dkim::SignOptions> dkim_sign_options(const config::Config& cfg, const std::string& domain,
                                                           const std::string& from_localpart, std::time_t now) {
	std::vector<mailauth::dkim::SignOptions> out;
	auto dom = cfg.domains.find(domain);
	if (dom == cfg.domains.end()) return out;
	smtp::Address identity;
	identity.localpart = config::canonical_localpart(dom->second, from_localpart);
	identity.domain.ascii = dom->second.name;
	for (const auto& name : dom->second.dkim_sign) {
		auto it = dom->second.dkim_selectors.find(name);
		if (it == dom->second.dkim_selectors.end()) continue;
		const config::DkimSelector& sel = it->second;
		// Loaded with the configuration; a config whose key did not load
		// is never put in force by ternd (Config::load_dkim_keys).
		if (!sel.key.valid()) {
			log::error("dkim sign: key not loaded", {{"file", sel.private_key_file}});
			continue;
		}
		mailauth::dkim::SignOptions opts;
		opts.domain = dom->second.name;
		opts.selector = name;
		opts.key = sel.key;
		opts.header_canon = canon_of(sel.header_canon);
		opts.body_canon = canon_of(sel.body_canon);
		opts.headers = sel.headers;
		opts.expiration_s = sel.expiration_s;
		opts.timestamp = now;
		opts.identity = identity.to_ascii_string();
		out.push_back(std::move(opts));
	}
	return out;
}

std::string dkim_sign_text(const config::Config& cfg, const std::string& from, const std::string& message,
                           std::time_t now) {
	std::string localpart, domain;
	split_address(from, localpart, domain);
	std::string out;
	for (const auto& opts : dkim_sign_options(cfg, domain, localpart, now)) {
		std::string error;
		auto sig = mailauth::dkim::sign_message(opts, message, &error);
		if (sig)
			out += *sig;
		else
			log::error("dkim sign",
			           {{"domain", opts.domain}, {"selector", opts.selector}, {"error", error}});
	}
	return out;
}

std::string signed_dsn_text(const config::Config& cfg, const message::DsnMessage& dsn, bool utf8, std::time_t now) {
	std::string text = message::compose_dsn(dsn, utf8);
	return dkim_sign_text(cfg, dsn.from, text, now) + text;
}

}  // namespace tern::server
