// Authentication-Results entries per check, see auth_methods.h.
#include "mailauth/auth_methods.h"

#include <string_view>

#include "smtp/parser.h"

namespace tern::mailauth {

namespace {

message::AuthProp prop(std::string type, std::string property, std::string value, bool address_like) {
	message::AuthProp p;
	p.type = std::move(type);
	p.property = std::move(property);
	p.value = std::move(value);
	p.is_address_or_domain = address_like;
	return p;
}

// A signature's i= as the model shows it: the local part as written, the
// domain in its lower-case ASCII form (as written when it does not parse).
std::string identity_text(const std::string& identity) {
	size_t at = identity.rfind('@');
	if (at == std::string::npos) return identity;
	std::optional<smtp::Domain> domain = smtp::parse_domain(identity.substr(at + 1));
	return domain ? identity.substr(0, at + 1) + domain->ascii : identity;
}

}  // namespace

message::AuthMethod iprev_auth_method(IprevStatus status, const IpAddr& remote_ip) {
	message::AuthMethod m;
	m.method = "iprev";
	m.result = iprev_status_name(status);
	m.props.push_back(prop("policy", "iprev", remote_ip.to_string(), false));
	return m;
}

std::vector<message::AuthMethod> dkim_auth_methods(const std::vector<dkim::Result>& results, const std::string& error) {
	std::vector<message::AuthMethod> out;
	if (results.empty()) {
		message::AuthMethod m;
		m.method = "dkim";
		m.result = "none";
		m.reason = error.empty() ? "no dkim signatures" : error;
		out.push_back(std::move(m));
		return out;
	}
	for (const dkim::Result& r : results) {
		message::AuthMethod m;
		m.method = "dkim";
		m.result = std::string(dkim::status_name(r.status));
		m.reason = r.error;
		if (r.signature && !r.refused_before_lookup) {
			const dkim::Signature& sig = *r.signature;
			m.comment = r.key_comment();
			m.props.push_back(prop("header", "d", sig.domain, true));
			m.props.push_back(prop("header", "s", sig.selector, true));
			m.props.push_back(prop("header", "a", sig.algorithm(), false));
			// RFC 6008 2: at least 8 characters, unique among the signatures.
			m.props.push_back(prop("header", "b", sig.b_prefix(), false));
			if (sig.identity) m.props.push_back(prop("header", "i", identity_text(*sig.identity), true));
		}
		out.push_back(std::move(m));
	}
	return out;
}

message::AuthMethod spf_auth_method(SpfStatus status, SpfReceived::Identity identity,
                                    const std::string& identity_domain) {
	message::AuthMethod m;
	m.method = "spf";
	m.result = spf_status_name(status);
	std::string_view property = spf_identity_name(identity);
	if (!identity_domain.empty() && !property.empty())
		m.props.push_back(prop("smtp", std::string(property), identity_domain, true));
	return m;
}

message::AuthMethod dmarc_auth_method(const DmarcResult& result) {
	message::AuthMethod m;
	m.method = "dmarc";
	m.result = dmarc_status_name(result.status);
	if (!result.domain.empty()) m.props.push_back(prop("header", "from", result.domain, true));
	return m;
}

message::AuthMethod submission_auth_method(const std::string& mailfrom) {
	message::AuthMethod m;
	m.method = "auth";
	m.result = "pass";
	m.props.push_back(prop("smtp", "mailfrom", mailfrom, true));
	return m;
}

}  // namespace tern::mailauth
