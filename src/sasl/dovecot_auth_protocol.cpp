#include "sasl/dovecot_auth_protocol.h"

#include "util/base64.h"
#include "util/strings.h"

namespace tern::sasl::dovecot {

namespace {

// Protocol version 1; minor 2 is what Dovecot 2.3 speaks. A server with
// another major version is not talking this protocol.
constexpr std::string_view major_version = "1";
constexpr std::string_view minor_version = "2";

std::vector<std::string_view> split_tabs(std::string_view line) {
	std::vector<std::string_view> parts;
	size_t start = 0;
	for (;;) {
		size_t tab = line.find('\t', start);
		parts.push_back(
		    line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
		if (tab == std::string_view::npos) return parts;
		start = tab + 1;
	}
}

// The value of an optional `name=value` parameter, unescaped.
std::optional<std::string> parameter(const std::vector<std::string_view>& fields, size_t from, std::string_view name) {
	for (size_t i = from; i < fields.size(); ++i) {
		std::string_view f = fields[i];
		if (f.size() > name.size() && f.substr(0, name.size()) == name && f[name.size()] == '=')
			return unescape(f.substr(name.size() + 1));
	}
	return std::nullopt;
}

bool flag(const std::vector<std::string_view>& fields, size_t from, std::string_view name) {
	for (size_t i = from; i < fields.size(); ++i)
		if (fields[i] == name) return true;
	return false;
}

}  // namespace

bool is_relayed(std::string_view mechanism_upper) {
	for (auto m : relayed_mechanisms)
		if (m == mechanism_upper) return true;
	return false;
}

std::string advertised_for(const std::vector<std::string>& offered) {
	std::string out;
	for (auto m : relayed_mechanisms) {
		for (const auto& o : offered) {
			if (o != m) continue;
			if (!out.empty()) out.push_back(' ');
			out += m;
			break;
		}
	}
	return out;
}

std::string escape(std::string_view value) {
	std::string out;
	out.reserve(value.size());
	for (char c : value) {
		switch (c) {
		case '\0':
			out +=
			    "\001"
			    "0";
			break;
		case '\001':
			out +=
			    "\001"
			    "1";
			break;
		case '\t': out += "\001t"; break;
		case '\r': out += "\001r"; break;
		case '\n': out += "\001n"; break;
		default: out.push_back(c);
		}
	}
	return out;
}

std::string unescape(std::string_view value) {
	std::string out;
	out.reserve(value.size());
	for (size_t i = 0; i < value.size(); ++i) {
		if (value[i] != '\001' || i + 1 == value.size()) {
			out.push_back(value[i]);
			continue;
		}
		char c = value[++i];
		switch (c) {
		case '0': out.push_back('\0'); break;
		case '1': out.push_back('\001'); break;
		case 't': out.push_back('\t'); break;
		case 'r': out.push_back('\r'); break;
		case 'n':
		case 'l': out.push_back('\n'); break;
		default: out.push_back(c);  // anything else stands for itself
		}
	}
	return out;
}

std::string ClientProtocol::hello(long pid) {
	return "VERSION\t" + std::string(major_version) + "\t" + std::string(minor_version) + "\nCPID\t" +
	    std::to_string(pid) + "\n";
}

bool ClientProtocol::offers(std::string_view mechanism_upper) const {
	for (const auto& m : mechanisms_)
		if (m == mechanism_upper) return true;
	return false;
}

Event ClientProtocol::error(std::string why) {
	state_ = State::broken;
	Event e;
	e.kind = Event::Kind::protocol_error;
	e.reason = std::move(why);
	return e;
}

Event ClientProtocol::feed(std::string_view line) {
	if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
	if (state_ == State::broken) return error("line after a protocol error");
	auto fields = split_tabs(line);
	std::string_view command = fields[0];
	switch (state_) {
	case State::version:
		if (command != "VERSION" || fields.size() < 3)
			return error("expected VERSION, got: " + std::string(command));
		if (fields[1] != major_version) return error("unsupported protocol version " + std::string(fields[1]));
		state_ = State::handshake;
		return {};
	case State::handshake:
		if (command == "MECH") {
			if (fields.size() < 2 || fields[1].empty()) return error("MECH without a name");
			// A private mechanism is for Dovecot's own use, never offered.
			if (!flag(fields, 2, "private")) mechanisms_.push_back(ascii_upper(fields[1]));
			return {};
		}
		if (command == "DONE") {
			state_ = State::ready;
			Event e;
			e.kind = Event::Kind::handshake_done;
			return e;
		}
		// SPID, CUID, COOKIE and whatever later versions add.
		return {};
	case State::ready:
	case State::finished: return error("unexpected " + std::string(command) + " with no request pending");
	case State::waiting:
	case State::challenged: return reply(command, fields);
	case State::broken: break;
	}
	return error("line after a protocol error");
}

Event ClientProtocol::reply(std::string_view command, const std::vector<std::string_view>& fields) {
	if (command != "CONT" && command != "OK" && command != "FAIL")
		return error("unexpected reply " + std::string(command));
	if (fields.size() < 2 || fields[1] != std::to_string(id_))
		return error(std::string(command) + " for another request");
	Event e;
	if (command == "CONT") {
		if (state_ == State::challenged) return error("CONT while the client's answer is pending");
		auto data = base64_decode(fields.size() > 2 ? fields[2] : std::string_view());
		if (!data) return error("CONT with invalid base64");
		state_ = State::challenged;
		e.kind = Event::Kind::challenge;
		e.data = std::move(*data);
		return e;
	}
	state_ = State::finished;
	if (auto user = parameter(fields, 2, "user")) e.user = std::move(*user);
	if (command == "OK") {
		e.kind = Event::Kind::success;
		if (auto resp = parameter(fields, 2, "resp")) {
			auto data = base64_decode(*resp);
			if (!data) return error("OK with invalid base64");
			e.data = std::move(*data);
			e.has_data = true;
		}
		return e;
	}
	e.reason = parameter(fields, 2, "reason").value_or("");
	// `temp` (Dovecot 2.3) or code=temp_fail (later versions): the passdb
	// could not be asked; the credentials were not judged.
	bool temporary = flag(fields, 2, "temp") || parameter(fields, 2, "code").value_or("") == "temp_fail";
	e.kind = temporary ? Event::Kind::temporary_failure : Event::Kind::failure;
	return e;
}

std::string ClientProtocol::auth(const AuthRequest& r) {
	if (state_ != State::ready) return {};
	state_ = State::waiting;
	std::string line = "AUTH\t" + std::to_string(id_) + "\t" + escape(r.mechanism) + "\tservice=smtp";
	if (r.secured) line += "\tsecured";
	// tern applies its own delays and per-address failure limits; Dovecot's
	// penalty on top would stretch a failure past tern's deadline, and a
	// timed-out login is not counted as a failed one.
	line += "\tno-penalty";
	if (!r.local_ip.empty()) line += "\tlip=" + escape(r.local_ip);
	if (!r.remote_ip.empty()) line += "\trip=" + escape(r.remote_ip);
	if (r.local_port > 0) line += "\tlport=" + std::to_string(r.local_port);
	if (r.remote_port > 0) line += "\trport=" + std::to_string(r.remote_port);
	// An empty initial response is "resp=" with nothing after it.
	if (r.initial_response) line += "\tresp=" + base64_encode(*r.initial_response);
	return line + "\n";
}

std::string ClientProtocol::cont(std::string_view data) {
	if (state_ != State::challenged) return {};
	state_ = State::waiting;
	return "CONT\t" + std::to_string(id_) + "\t" + base64_encode(data) + "\n";
}

std::string login_name_in(std::string_view mechanism, int index, std::string_view message) {
	if (index != 0) return {};
	if (mechanism == "PLAIN") {
		// RFC 4616 2: [authzid] NUL authcid NUL passwd.
		size_t first = message.find('\0');
		if (first == std::string_view::npos) return {};
		size_t second = message.find('\0', first + 1);
		if (second == std::string_view::npos) return {};
		return std::string(message.substr(first + 1, second - first - 1));
	}
	if (mechanism == "LOGIN") return std::string(message);
	if (mechanism == "SCRAM-SHA-1" || mechanism == "SCRAM-SHA-256") {
		// RFC 5802 7: gs2-header "n,," (or "y,," / "p=..,") then
		// client-first-message-bare starting "n=saslname,"; "=2C" and "=3D"
		// stand for ',' and '='.
		size_t bare = message.find(',');
		if (bare == std::string_view::npos) return {};
		bare = message.find(',', bare + 1);
		if (bare == std::string_view::npos) return {};
		std::string_view rest = message.substr(bare + 1);
		if (rest.substr(0, 2) != "n=") return {};
		rest.remove_prefix(2);
		rest = rest.substr(0, rest.find(','));
		std::string out;
		for (size_t i = 0; i < rest.size(); ++i) {
			if (rest.substr(i, 3) == "=2C") {
				out.push_back(',');
				i += 2;
			} else if (rest.substr(i, 3) == "=3D") {
				out.push_back('=');
				i += 2;
			} else {
				out.push_back(rest[i]);
			}
		}
		return out;
	}
	return {};
}

}  // namespace tern::sasl::dovecot
