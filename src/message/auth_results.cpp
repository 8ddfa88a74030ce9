// Authentication-Results header field builder, see auth_results.h.
#include "message/auth_results.h"

#include "message/headers.h"

namespace tern::message {

std::string auth_results_value(std::string_view text) {
	// RFC 8601 2.2 "value" is RFC 2045's: token or quoted-string. Only what
	// cannot appear in a token here forces quoting; bytes ≥ 0x80 (UTF-8,
	// RFC 6532 3.2) do not.
	bool quote = text.empty();
	for (unsigned char c : text) {
		if (c == '"' || c == '\\' || c <= ' ' || c == 0x7f) {
			quote = true;
			break;
		}
	}
	if (!quote) return std::string(text);
	std::string out = "\"";
	for (char c : text) {
		if (c == '"' || c == '\\') out += '\\';
		out += c;
	}
	out += '"';
	return out;
}

std::string build_authentication_results(const std::string& hostname, const std::string& comment,
                                         const std::vector<AuthMethod>& methods) {
	// RFC 8601 2.2: authserv-id [CFWS authres-version] (no-result / 1*resinfo).
	HeaderBuilder h("Authentication-Results");
	std::string authserv;
	if (!comment.empty()) authserv = "(" + comment + ") ";
	authserv += auth_results_value(hostname) + ";";
	// On the field name's line whatever its length, as the model writes it.
	h.add_unfolded(authserv);
	if (methods.empty()) {
		h.add("none");
		return h.finish();
	}

	for (size_t i = 0; i < methods.size(); ++i) {
		const AuthMethod& m = methods[i];
		std::vector<std::string> items;
		items.push_back(m.method + "=" + m.result);
		if (!m.comment.empty() && (!m.reason.empty() || !m.props.empty()))
			items.push_back("(" + m.comment + ")");
		if (!m.reason.empty()) items.push_back("reason=" + auth_results_value(m.reason));
		for (const AuthProp& p : m.props) {
			std::string item = p.type + "." + p.property + "=";
			item += p.is_address_or_domain ? p.value : auth_results_value(p.value);
			if (!p.comment.empty()) item += " (" + p.comment + ")";
			items.push_back(std::move(item));
		}
		// The ";" between resinfos sticks to the last item of a method so
		// a fold never starts a line with it.
		if (i + 1 < methods.size()) items.back() += ";";
		for (const std::string& item : items) h.add(item);
	}
	return h.finish();
}

}  // namespace tern::message
